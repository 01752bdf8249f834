"""Neural networks as tidal estimators: torch modules whose architecture is data in ``tidal.yaml``.

::

    model:
      estimator: tidal.nn.TorchClassifier      # or tidal.nn.TorchRegressor
      params:
        module: mlp                            # a registered name, or mypackage.nets.MyNet
        module_params: {hidden: [64, 32], dropout: 0.1}
        epochs: 30
        early_stopping: true

torch is imported only when a model is fitted, predicts or is loaded (``pip install 'tidal[torch]'``); the
torch flavor (:mod:`tidal.train.flavors.torch_flavor`) stores the weights as safetensors, never pickle.
"""

from __future__ import annotations

from tidal.nn.estimators import TorchClassifier, TorchEstimator, TorchRegressor
from tidal.nn.registry import register_module, registered_modules, resolve_module

__all__ = ["TorchClassifier", "TorchEstimator", "TorchRegressor", "register_module", "registered_modules",
           "resolve_module"]
