"""Tune an SVM on scikit-learn's digits data set, NNI-style (``import nni``)."""

import argparse
import logging

import nni
from nni.utils import merge_parameter
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.svm import SVC

logger = logging.getLogger("digits")


def get_params():
    parser = argparse.ArgumentParser()
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=0.001)
    parser.add_argument("--kernel", type=str, default="rbf")
    args, _ = parser.parse_known_args()
    return args


def main(args):
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=99
    )
    model = SVC(C=args.C, gamma=args.gamma, kernel=args.kernel)
    folds = cross_val_score(model, x_train, y_train, cv=3)
    for fold, score in enumerate(folds):
        nni.report_intermediate_result(float(score))
        logger.info("fold %d accuracy %.4f", fold, score)
    model.fit(x_train, y_train)
    accuracy = model.score(x_test, y_test)
    logger.info("test accuracy %.4f", accuracy)
    nni.report_final_result({"default": accuracy, "cv_mean": float(folds.mean())})


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    tuned = nni.get_next_parameter()
    main(merge_parameter(get_params(), tuned))
