"""The ASL files: the workflow's source of truth, shipped as package data.

Installed as ``trainer.contract.statemachine``; read through :mod:`trainer.contract.statemachines`.
"""
