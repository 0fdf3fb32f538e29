"""Compatibility with the real reader: TensorFlow (in its own venv, see tests/tf_env.py) reads our hand-written
TFRecords the way StyleGAN's ``training/dataset.py`` does and gets the same arrays; and our reader parses records
that TensorFlow wrote."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
from animefaces import pack
from animefaces.pack import tfrecord
from test_pack import block_mean_half_even, make_dataset, pack_params
from tf_env import tf_python

pytestmark = [pytest.mark.tfcompat, pytest.mark.slow]

TF_SCRIPT = r"""
import glob, json, os, sys
import numpy as np
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf

pack_dir, out_dir = sys.argv[1], sys.argv[2]
result = {"tf": tf.__version__, "files": {}}
for path in sorted(glob.glob(os.path.join(pack_dir, "*.tfrecords"))):
    # StyleGAN's TFRecordDataset.parse_tfrecord_tf: FixedLenFeature shape [3] int64 + data string, decode_raw uint8
    def parse(record):
        f = tf.io.parse_single_example(record, features={
            "shape": tf.io.FixedLenFeature([3], tf.int64),
            "data": tf.io.FixedLenFeature([], tf.string)})
        return tf.reshape(tf.io.decode_raw(f["data"], tf.uint8), f["shape"])
    images = [img.numpy() for img in tf.data.TFRecordDataset(path).map(parse)]
    name = os.path.basename(path)
    np.save(os.path.join(out_dir, name + ".npy"), np.stack(images))
    result["files"][name] = len(images)
labels = glob.glob(os.path.join(pack_dir, "*.labels"))
result["labels"] = np.load(labels[0]).tolist() if labels else None

# records written by TensorFlow itself, for our reader
ex = tf.train.Example(features=tf.train.Features(feature={
    "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=[3, 2, 2])),
    "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(range(12))])),
    "neg": tf.train.Feature(int64_list=tf.train.Int64List(value=[-7, 2**40])),
    "f": tf.train.Feature(float_list=tf.train.FloatList(value=[0.25, -1.5]))}))
with tf.io.TFRecordWriter(os.path.join(out_dir, "tf-written.tfrecords")) as w:
    w.write(ex.SerializeToString())
    w.write(ex.SerializeToString())
print(json.dumps(result))
"""


def test_tensorflow_reads_our_tfrecords_and_we_read_theirs(tmp_path):
    python = tf_python()
    dataset, classes, decoded = make_dataset(tmp_path, n=9, size=32)
    out = tmp_path / "pack" / "demo"
    pack.pack("tfrecord", dataset, out, None, pack_params(tfrecord={"seed": 3}), classes=classes, name="demo")
    tf_out = tmp_path / "tf"
    tf_out.mkdir()
    script = tmp_path / "read_tf.py"
    script.write_text(TF_SCRIPT, encoding="utf-8")
    proc = subprocess.run([str(python), str(script), str(out), str(tf_out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["files"] == {f"demo-r{k:02d}.tfrecords": 9 for k in (2, 3, 4, 5)}
    perm = np.random.default_rng(3).permutation(9)
    for k in (2, 3, 4, 5):
        name = f"demo-r{k:02d}.tfrecords"
        theirs = np.load(tf_out / f"{name}.npy")
        ours = np.stack(list(tfrecord.read_images(out / name)))
        assert theirs.dtype == np.uint8 and theirs.shape == (9, 3, 2**k, 2**k)
        assert np.array_equal(theirs, ours)
        want = np.stack([block_mean_half_even(decoded[i], 32 // 2**k) for i in perm])
        assert np.array_equal(theirs, want)
    labels = pd.read_parquet(dataset)["label"].to_numpy()[perm]
    assert np.array_equal(np.asarray(result["labels"]).argmax(axis=1), labels)

    records = [tfrecord.parse_example(r) for r in tfrecord.read_records(tf_out / "tf-written.tfrecords")]
    assert len(records) == 2
    assert records[0] == {"shape": [3, 2, 2], "data": [bytes(range(12))], "neg": [-7, 2**40], "f": [0.25, -1.5]}
