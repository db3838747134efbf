"""Sphinx configuration for the fastopt documentation (built offline, -W)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
os.environ.setdefault("MPLBACKEND", "Agg")

import fastopt  # noqa: E402

project = "fastopt"
author = "the fastopt developers"
copyright = "2026, the fastopt developers"  # noqa: A001
release = version = fastopt.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

# Nothing can be fetched when the docs build (CI has no network).
intersphinx_mapping = {}

autosummary_generate = True
autodoc_default_options = {}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "experiments", "examples"]

html_theme = "pydata_sphinx_theme"
html_title = "fastopt"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
# MathJax is loaded from a CDN by default; the page still builds offline.

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"(^|/)_paths\.py",
    "write_computation_times": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib",),
}

suppress_warnings = ["config.cache"]
