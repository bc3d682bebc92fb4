"""What a run costs on AWS: prices, usage, bills, the estimate and the meter."""
