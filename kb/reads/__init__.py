"""What each page reads, one module per page (named like it), the CSV reports, and paging for long tables."""
