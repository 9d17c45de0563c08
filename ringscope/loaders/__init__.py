"""Reading marketplace exports, checking every row, and the synthetic marketplace."""
