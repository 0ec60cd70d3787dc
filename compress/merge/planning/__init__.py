"""Planning a merge: which producers merge, alone or as coupled groups, and which layers absorb their channels."""
