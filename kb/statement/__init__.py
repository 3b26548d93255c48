"""The monthly SLA statement of one client: what it holds (``content``) and the PDF (``render``)."""
