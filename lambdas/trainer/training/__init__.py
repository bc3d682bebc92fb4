"""Training arithmetic and bookkeeping shared by the handlers and the reference trainer."""
