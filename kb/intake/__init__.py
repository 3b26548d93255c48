"""Rows coming in: the rules every row passes, CSV and form rows, and changes to stored rows."""
