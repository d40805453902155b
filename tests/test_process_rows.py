"""Tests for algebranets/data/process_rows.py."""

import pytest

from algebranets.data import process_rows


def test_slices_partition_the_global_batch_in_order():
  rows = [process_rows.local_rows(12, i, 3) for i in range(3)]
  assert rows == [slice(0, 4), slice(4, 8), slice(8, 12)]
  assert process_rows.local_rows(5, 0, 1) == slice(0, 5)


def test_indivisible_batch_names_the_fix():
  with pytest.raises(
      ValueError,
      match="not divisible by the number of "
      "processes 2; make the batch size",
  ):
    process_rows.local_rows(5, 0, 2)
