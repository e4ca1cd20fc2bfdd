"""Local evidence for scene (room) search: RootSIFT, a label-free codebook, VLAD / ASMK aggregation,
epipolar verification and score fusion with the global room vector (issue 13).

Why a second, local index: a room photographed from the other side shares few *regions* with the
first photo but many small patches (the bedspread pattern, a lamp base, the door plate). Aggregated
local descriptors compare those patches without the geometry of the whole image; verification then
checks that the matched patches are consistent with one 3-D scene seen from two cameras.

    from vidpipe.scenes_local import rootsift, codebook, vlad, verify, fusion
    feats = [rootsift.extract(im, mask) for im, mask in ...]         # people masked out
    words = codebook.train(rootsift.stack(feats), k=256)              # no labels: the case's own images
    vecs = np.stack([vlad.encode(f.rootsift(), words) for f in feats])
"""
