"""Executors: the rules of :mod:`fastopt.rules` compiled for CPU and GPU."""
