"""The support terms as SQL: the business calendar, deadlines, uptime and refunds as of an instant."""
