import numpy as np
import pytest

from kerascnn import _validation as v
from kerascnn.utils import conv_output_size


@pytest.mark.parametrize("bad", [0, -1, 1.5, "3", None, True])
def test_positive_int_names_argument_and_value(bad):
    with pytest.raises(ValueError, match=r"Argument `groups` must be a positive "
                       r"integer\. Received: groups="):
        v.check_positive_int("groups", bad)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2, float("nan"), "0.5", True])
def test_rate_must_be_in_unit_interval(bad):
    with pytest.raises(ValueError, match=r"Received: rate="):
        v.check_rate("rate", bad)


def test_option_lists_choices():
    assert v.check_option("padding", "SAME", ("same", "valid")) == "same"
    with pytest.raises(ValueError, match=r"one of 'same', 'valid'.*"
                       r"Received: padding='full'"):
        v.check_option("padding", "full", ("same", "valid"))


def test_images_reject_nan_and_add_channel_axis():
    x = np.zeros((3, 4, 4), "float32")
    assert v.check_images("x", x).shape == (3, 4, 4, 1)
    x[1, 2, 2] = np.nan
    with pytest.raises(ValueError, match=r"finite pixel values.*image 1"):
        v.check_images("x", x)


def test_labels_checks():
    assert v.check_labels("y", [0, 1, 1], 2).tolist() == [0, 1, 1]
    assert v.check_labels("y", np.eye(3)).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match=r"class indices in \[0, 1\].*from 0 to 2"):
        v.check_labels("y", [0, 1, 2], num_classes=2)
    with pytest.raises(ValueError, match="at least two classes"):
        v.check_labels("y", [3, 3, 3])
    with pytest.raises(ValueError, match="same number of samples"):
        v.check_labels("y", [0, 1], num_samples=3)


def test_batch_size_larger_than_data():
    with pytest.raises(ValueError, match=r"<= the number of training samples "
                       r"\(10\)\. Received: batch_size=32"):
        v.check_batch_size(32, 10)


@pytest.mark.parametrize(
    "size, f, s, p, expected",
    [(32, 5, 1, 2, 32), (227, 11, 4, 0, 55), (7, 3, 1, "valid", 5),
     (7, 3, 2, 1, 4), (28, 3, 2, "same", 14), (5, 5, 1, 0, 1)],
)
def test_conv_output_size_formula(size, f, s, p, expected):
    assert conv_output_size(size, f, s, p) == expected


def test_conv_output_size_errors_name_layer_and_numbers():
    with pytest.raises(ValueError, match=r"not an integer.*= 13\.5"):
        conv_output_size(28, 3, 2, "valid")
    assert conv_output_size(28, 3, 2, "valid", strict=False) == 13
    with pytest.raises(ValueError, match=r"layer `conv_3` is not positive"):
        conv_output_size(2, 5, 1, "valid", name="conv_3")
    with pytest.raises(ValueError, match=r"Received: padding='full'"):
        conv_output_size(8, 3, 1, "full")
    with pytest.raises(ValueError, match=r"Received: stride=0"):
        conv_output_size(8, 3, 0)


@pytest.mark.parametrize("bad", [0, (0, 4), (4,), "8", 2.5])
def test_image_size_reports_the_value_as_given(bad):
    with pytest.raises(ValueError, match=r"Received: image_size=" + 
                       __import__("re").escape(repr(bad))):
        v.check_image_size("image_size", bad)
    assert v.check_image_size("image_size", 8) == (8, 8)


def test_labels_refuse_rows_that_are_not_one_hot():
    assert v.check_labels("y", np.eye(3, dtype="float32")[[0, 2, 1]]
                          ).tolist() == [0, 2, 1]
    with pytest.raises(ValueError, match=r"exactly one 1 per row\. Received: "
                       r"labels of shape \(3, 3\) whose row 1 is \[2, 0, 0\]"):
        v.check_labels("y", np.array([[1, 0, 0], [2, 0, 0], [0, 0, 1]]))
    with pytest.raises(ValueError, match="row 0"):
        v.check_labels("y", np.array([[0.7, 0.3], [0.0, 1.0]]))


def test_complex_pixels_and_labels_refused():
    with pytest.raises(ValueError, match="real-valued array of images"):
        v.check_images("x", np.ones((2, 3, 3), np.complex128))
    with pytest.raises(ValueError, match="integer class labels"):
        v.check_labels("y", np.array([0, 1j]))


@pytest.mark.parametrize("huge", [10_000_000, 10 ** 9, 2 ** 62])
def test_huge_label_refused_without_allocating(huge):
    import time

    from kerascnn import data

    start = time.perf_counter()
    for call in (lambda y: v.check_labels("y", y),
                 lambda y: data.class_counts(y),
                 lambda y: data.split_dataset(np.zeros((4, 2, 2)), y, 0, 0)):
        with pytest.raises(ValueError, match=f"a label of {huge}, larger "
                           "than the number of labels"):
            call(np.array([0, 1, 1, huge]))
    assert time.perf_counter() - start < 2.0


def test_sparse_labels_of_a_small_held_out_split_pass():
    # Three validation labels of a 10-class problem: not an ID column.
    assert v.check_labels("y_val", [0, 5, 9]).tolist() == [0, 5, 9]
    assert v.check_labels("y", [0, 65535]).tolist() == [0, 65535]
    with pytest.raises(ValueError, match="a label of 65536"):
        v.check_labels("y", [0, 65536])
