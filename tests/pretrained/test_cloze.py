"""The recovered fraction of cloze accuracy and its standard error over the items."""
import pytest

from gatelab.pretrained.cloze import recovered_accuracy


def test_the_ratio_is_of_mean_accuracies_and_its_error_shrinks_with_more_items():
    teacher, student = [1.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]
    ratio, se = recovered_accuracy(student, teacher)
    assert ratio == pytest.approx(2 / 3) and 0 < se < 1
    _, se_many = recovered_accuracy(student * 25, teacher * 25)
    assert se_many < se / 3


def test_a_student_equal_to_its_teacher_recovers_everything_without_error():
    assert recovered_accuracy([1.0, 0.0, 1.0], [1.0, 0.0, 1.0]) == (1.0, 0.0)


def test_no_ratio_when_the_teacher_gets_nothing_right():
    assert recovered_accuracy([1.0, 0.0], [0.0, 0.0]) == (None, None)


def test_items_must_pair():
    with pytest.raises(ValueError, match="3 student items against 2 teacher items"):
        recovered_accuracy([1.0, 0.0, 1.0], [1.0, 0.0])
