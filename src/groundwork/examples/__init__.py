"""Examples that ship with groundwork, so ``groundwork demo`` and the docs run from any folder.

``groundwork.examples.digits``: a PyTorch MLP on scikit-learn's digits, as a script
(``train.py``) and as a pipeline (``pipeline.py:digits_pipeline``). Importing this
package is light; torch is imported when a step or the script runs.
"""
