"""``stepnet report``: one self-contained HTML page of a run, from its folder or its account.

* :mod:`~stepnet.report.history` - execution histories read: states' visits, Lambda tasks;
* :mod:`~stepnet.report.record` - a run's histories, epochs and sizes, from a folder or a client;
* :mod:`~stepnet.report.dollars` - the one seam to the cost model (:mod:`stepnet.billing`);
* :mod:`~stepnet.report.summary` - per epoch and per state machine, the numbers;
* :mod:`~stepnet.report.charts` and :mod:`~stepnet.report.graph` - the SVG drawings;
* :mod:`~stepnet.report.page` - the HTML.
"""
