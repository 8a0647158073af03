"""core.parallel.map_ahead: a command's pure work computed ahead in one forked helper process,
in order, its errors raised where the caller reaches them, the helper gone once done."""
import multiprocessing
import os

import pytest

from core.parallel import map_ahead


def _where(n):
    return n, os.getpid()


def _fail_at_three(n):
    if n == 3:
        raise ValueError("item 3 is bad")
    return n


def test_items_are_computed_in_a_helper_process_and_come_back_in_order():
    results = list(map_ahead(_where, range(20), helper=True))
    assert [n for n, _pid in results] == list(range(20))
    assert {pid for _n, pid in results} != {os.getpid()}
    assert len({pid for _n, pid in results}) == 1  # one helper
    assert multiprocessing.active_children() == []


def test_without_a_helper_or_with_one_item_nothing_is_forked():
    assert list(map_ahead(_where, range(5))) == [(n, os.getpid()) for n in range(5)]
    assert list(map_ahead(_where, [7], helper=True)) == [(7, os.getpid())]


def test_an_error_is_raised_where_the_caller_reaches_its_item():
    seen = []
    with pytest.raises(ValueError, match="item 3 is bad"):
        for n in map_ahead(_fail_at_three, range(6), helper=True):
            seen.append(n)
    assert seen == [0, 1, 2]
    assert multiprocessing.active_children() == []


def test_a_caller_that_stops_early_leaves_no_helper_behind():
    results = map_ahead(_where, range(50), helper=True)
    assert next(results)[0] == 0
    results.close()
    assert multiprocessing.active_children() == []


def test_shared_the_caller_computes_every_other_item_and_the_helper_the_rest():
    results = list(map_ahead(_where, range(7), helper=True, share=True))
    assert [n for n, _pid in results] == list(range(7))
    assert {pid for n, pid in results if n % 2 == 0} == {os.getpid()}
    helper = {pid for n, pid in results if n % 2 == 1}
    assert len(helper) == 1 and helper != {os.getpid()}
    assert multiprocessing.active_children() == []


def test_in_a_web_request_nothing_is_forked():
    from flask import Flask
    with Flask(__name__).test_request_context("/"):
        assert list(map_ahead(_where, range(4), helper=True, share=True)) == [(n, os.getpid()) for n in range(4)]
