"""What a merge did: the reports of merging by weights and by data."""
