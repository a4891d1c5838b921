"""The official GenImage pipeline, written here as its code runs it, for the tests to compare
with: the README's ``translate_duplicate`` (PIL paste onto a black RGB canvas), the official
``binary_dataset`` transforms with it in place of the resize, torchvision's ImageFolder (its
loader converts to RGB first), ``validate.py``'s model and metrics."""

import math

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import accuracy_score, average_precision_score
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T
from torchvision.datasets.folder import pil_loader

from npr_cuda.detector import npr_resnet50, read_state_dict
from npr_cuda.reference import formula_npr

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

__all__ = ["official_test_transform", "official_train_transform", "official_validate", "pil_loader"]


def translate_duplicate(img, cropSize):  # noqa: N803 - the official code's names
    """The official README's function, statement for statement."""
    if min(img.size) < cropSize:
        width, height = img.size

        new_width = width * math.ceil(cropSize / width)
        new_height = height * math.ceil(cropSize / height)

        new_img = Image.new("RGB", (new_width, new_height))
        for i in range(0, new_width, width):
            for j in range(0, new_height, height):
                new_img.paste(img, (i, j))
        return new_img
    else:
        return img


def official_test_transform(crop_size=224):
    """binary_dataset with isTrain False, no_crop False, the resize replaced by the tiling."""
    return T.Compose(
        [
            T.Lambda(lambda img: translate_duplicate(img, crop_size)),
            T.CenterCrop(crop_size),
            T.Lambda(lambda img: img),  # flip_func when not training
            T.ToTensor(),
            T.Normalize(mean=MEAN, std=STD),
        ]
    )


def official_train_transform(crop_size=224):
    """binary_dataset with isTrain True (and no_flip False), the resize replaced by the tiling."""
    return T.Compose(
        [
            T.Lambda(lambda img: translate_duplicate(img, crop_size)),
            T.RandomCrop(crop_size),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(mean=MEAN, std=STD),
        ]
    )


def official_validate(generator_folder, weights, batch_size=4):
    """validate.py on one generator folder (0_real/1_fake in it) with the GenImage test
    transform and the official model (its NPR formula, eager, NCHW): acc, ap, r_acc, f_acc."""
    model = npr_resnet50(npr_impl=formula_npr)
    model.load_state_dict(read_state_dict(weights), strict=True)
    model.eval()
    loader = DataLoader(datasets.ImageFolder(generator_folder, official_test_transform()), batch_size=batch_size)
    y_true, y_pred = [], []
    with torch.no_grad():
        for img, label in loader:
            y_pred.extend(model(img).sigmoid().flatten().tolist())
            y_true.extend(label.flatten().tolist())
    y_true, y_pred = np.array(y_true), np.array(y_pred)
    r_acc = accuracy_score(y_true[y_true == 0], y_pred[y_true == 0] > 0.5)
    f_acc = accuracy_score(y_true[y_true == 1], y_pred[y_true == 1] > 0.5)
    acc = accuracy_score(y_true, y_pred > 0.5)
    ap = average_precision_score(y_true, y_pred)
    return {"acc": acc, "ap": ap, "real_acc": r_acc, "fake_acc": f_acc, "probs": y_pred}
