"""Evidence sources: folders on disk and archives read in place, behind one interface."""

from vidpipe.sources.base import ItemRef, Source, WalkEntry, source_for

__all__ = ["ItemRef", "Source", "WalkEntry", "source_for"]
