"""The L2 book against a plain reference model, by hand and by hypothesis."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from flightdesk.core.market.book import L2Book


def test_apply_replace_delete_and_top():
    book = L2Book()
    book.load_snapshot([["10.00", "1"], ["9.50", "2"]], [["10.50", "3"], ["11.00", "0"]])
    assert len(book) == 3  # the zero-size snapshot level is not a level
    book.apply_bids([["10.20", "4"], ["10.00", "0.000"], ["8.00", "0"]])  # unknown delete: fine
    book.apply_asks([["10.40", "1.5"]])
    assert book.top() == (10.2, 4.0, 10.4, 1.5)
    assert book.bid_levels(5) == [["10.20", "4"], ["9.50", "2"]]
    assert book.ask_levels(1) == [["10.40", "1.5"]]
    assert book.depth_qty(2) == (6.0, 4.5)


def test_equal_numeric_spellings_are_one_level_and_keep_latest_string():
    book = L2Book()
    book.apply_bids([["100.10", "1"]])
    book.apply_bids([["100.1", "2"]])
    assert book.bid_levels(5) == [["100.1", "2"]]


def test_truncate_keeps_best_levels():
    book = L2Book()
    book.apply_bids([[str(p), "1"] for p in range(1, 11)])
    book.apply_asks([[str(p), "1"] for p in range(11, 21)])
    book.truncate(3)
    assert book.depth_qty(10) == (3.0, 3.0)
    assert [lv[0] for lv in book.bid_levels(10)] == ["10", "9", "8"]
    assert [lv[0] for lv in book.ask_levels(10)] == ["11", "12", "13"]


def test_crossed_and_empty():
    book = L2Book()
    nan = book.top()
    assert all(x != x for x in nan)
    book.apply_bids([["10", "1"]])
    book.apply_asks([["10", "1"]])
    assert book.is_crossed()


prices = st.integers(min_value=1, max_value=60).map(lambda i: f"{i / 4:.2f}")
qtys = st.sampled_from(["0", "0.0", "1", "2.5", "10"])
levels = st.lists(st.tuples(prices, qtys).map(list), max_size=12)


@given(st.lists(st.tuples(st.booleans(), levels), max_size=30))
def test_book_matches_reference_dict_model(messages):
    book = L2Book()
    ref = {True: {}, False: {}}
    for is_bid, lvls in messages:
        (book.apply_bids if is_bid else book.apply_asks)(lvls)
        for px, qty in lvls:
            if Decimal(qty) == 0:
                ref[is_bid].pop(Decimal(px), None)
            else:
                ref[is_bid][Decimal(px)] = qty
        want_bids = sorted(ref[True], reverse=True)
        want_asks = sorted(ref[False])
        assert [Decimal(lv[0]) for lv in book.bid_levels(100)] == want_bids
        assert [Decimal(lv[0]) for lv in book.ask_levels(100)] == want_asks
        assert [lv[1] for lv in book.bid_levels(100)] == [ref[True][p] for p in want_bids]
        # the float quantities kept beside the strings agree with them
        assert book.depth_qty(3) == (sum(float(ref[True][p]) for p in want_bids[:3]),
                                     sum(float(ref[False][p]) for p in want_asks[:3]))
        if want_bids:
            assert book.best_bid() == (float(want_bids[0]), float(ref[True][want_bids[0]]))


def test_bookkeeper_resyncs_instead_of_raising_on_a_bad_level():
    from flightdesk.core.market.events import BookMsg, Resync
    from flightdesk.core.market.keeper import BookKeeper
    from flightdesk.core.market.venue import ExternalProtocol

    keeper = BookKeeper({"v": ExternalProtocol("v")})
    seen: list[Resync] = []
    keeper.listeners.append(seen.append)
    good = BookMsg("v", "X", 1, 1, [["10", "1"]], [["11", "1"]], snapshot=True)
    other = BookMsg("v", "Y", 1, 1, [["5", "1"]], [["6", "1"]], snapshot=True)
    assert keeper.apply(good) is not None and keeper.apply(other) is not None
    bad = BookMsg("v", "X", 2, 2, [["10.5", "1"], ["abc", "1"]], [])
    assert keeper.apply(bad) is None
    assert keeper.counters["bad_levels"] == 1 and len(seen) == 1
    assert "bad level" in seen[0].detail
    assert len(keeper.books[("v", "X")]) == 0  # discarded, to be rebuilt
    assert keeper.books[("v", "Y")].top() == (5.0, 1.0, 6.0, 1.0)  # others untouched
