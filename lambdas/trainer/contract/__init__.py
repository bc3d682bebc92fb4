"""The contract: one spelling of everything the stack, the local engine and the Lambdas share."""
