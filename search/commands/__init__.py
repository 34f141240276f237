"""The commands a user runs (search, record, confirm, train): each fills in what differs on the one driver of search/running."""
