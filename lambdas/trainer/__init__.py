"""stepnet's Lambda code: run config, numpy network math, tensor/run store, thin handlers."""
