"""Classification: label sets, a cheap student, an LLM teacher, and the cascade.

A label set names the labels (`labelsets.create`). The student, a logistic regression on
the workspace embedder's vectors, learns from labelled texts in seconds
(`Classifier.train`) and answers a thousand texts a second with calibrated probabilities.
The teacher, any chat model constrained to the labels, labels texts zero- or few-shot
(`Classifier.teacher`); distillation turns its labels into a student (`Classifier.distill`),
with the unsure ones left to a person (`Classifier.review`). The cascade
(`Classifier.predict`) lets the student answer what it is sure of and sends the rest to
the teacher. See docs/classify.md.
"""

from feldspar.classify.cascade import CascadeResult
from feldspar.classify.classifier import Classifier, Distillation
from feldspar.classify.student import Student
from feldspar.classify.teacher import Prediction, Teacher

__all__ = ["CascadeResult", "Classifier", "Distillation", "Prediction", "Student", "Teacher"]
