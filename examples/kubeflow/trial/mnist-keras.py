"""The seed's trial: a Keras MNIST model tuned by NNI (runs in a TensorFlow image).

Only the primary replica reports (NNI's examples guard on the chief the same way);
kubesweep's keeper also ignores reports from non-primary replicas."""

import json
import os

import nni
import tensorflow as tf


def is_chief():
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    return task.get("type", "worker") in ("chief", "master") or (
        task.get("type") == "worker" and task.get("index", 0) == 0
    )


def main(params):
    (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
    x_train, x_test = x_train / 255.0, x_test / 255.0
    model = tf.keras.Sequential(
        [
            tf.keras.layers.Flatten(input_shape=(28, 28)),
            tf.keras.layers.Dense(params["hidden_size"], activation="relu"),
            tf.keras.layers.Dropout(params["dropout_rate"]),
            tf.keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(params["learning_rate"]),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    for _ in range(5):
        model.fit(x_train, y_train, batch_size=params["batch_size"], epochs=1, verbose=2)
        _, accuracy = model.evaluate(x_test, y_test, verbose=0)
        if is_chief():
            nni.report_intermediate_result(accuracy)
    if is_chief():
        nni.report_final_result(accuracy)


if __name__ == "__main__":
    main(nni.get_next_parameter())
