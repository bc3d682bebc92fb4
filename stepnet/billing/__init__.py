"""What a run costs on AWS: ``stepnet cost`` before deploying, and metered counts on the engine.

* :mod:`~stepnet.billing.prices` - the AWS prices, each with its source;
* :mod:`~stepnet.billing.rules` - DynamoDB item sizes and capacity units, exact ``.npz`` sizes;
* :mod:`~stepnet.billing.usage` - usage records and :class:`~stepnet.billing.usage.StoreCharges`,
  the one rule book store calls are charged by;
* :mod:`~stepnet.billing.bills` - usage in dollars by design, and the assumed durations;
* :mod:`~stepnet.billing.dryrun` - the handlers' own ``run()`` on a store of shapes;
* :mod:`~stepnet.billing.estimate` - the dry run weighed into an epoch's and a run's usage;
* :mod:`~stepnet.billing.report` - the estimate as ``stepnet cost`` prints it;
* :mod:`~stepnet.billing.meter` - the same counts, metered on the local engine.

Imports run one way: prices, rules → usage → bills, dryrun → estimate → report; meter uses
rules and usage.
"""
