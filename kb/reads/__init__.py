"""What each page reads, one module per page (named like it), and the CSV reports."""
