"""Bundled map data for the offline GPS map (see LICENSES.md here); nothing is fetched at run time."""
