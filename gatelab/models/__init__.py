"""Models built from blocks of registered mixers: language models, classifiers and forecasters."""
from .block import Block
from .classifier import ClassifierConfig, SequenceClassifier
from .forecaster import Forecaster, ForecasterConfig
from .gateformer import Gateformer, build_forecaster
from .lm import DecoderLM, LMOutput, ModelConfig
from .stack import BlockStack, TaskOutput

__all__ = ["Block", "BlockStack", "ClassifierConfig", "DecoderLM", "Forecaster", "ForecasterConfig", "Gateformer",
           "LMOutput", "ModelConfig", "SequenceClassifier", "TaskOutput", "build_forecaster"]
