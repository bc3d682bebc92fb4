"""stepnet: the command-line side — run configs, datasets, the local engine and AWS deploys."""
