"""Known-material hash lists (Project VIC, CAID, NCMEC style): import, storage, matching.

``parse`` reads list files into entries, ``store`` writes them into the case, ``match`` turns
them into per-media hits (exact MD5/SHA-1/SHA-256, PDQ within Meta's distance). Categories are
kept exactly as the list gives them; vidpipe never assigns meanings to category codes.
"""
