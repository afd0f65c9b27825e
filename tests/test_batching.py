"""The batch sizer on its own: start from the first measurement, grow, shrink in the tail."""

from daskfarm.client.batching import LONG_ITEM, BatchSizer


def test_first_measurement_sets_the_size_at_once():
    sizer = BatchSizer(target=0.5)
    assert sizer.next_size(threads=2, remaining=10_000, cap=None) == 1
    sizer.observe(1, 0.001)
    # a quarter of the target straight away, not 1 -> 4 -> 16 -> ...
    assert sizer.size == 125
    sizer.observe(125, 0.125)
    assert sizer.size == 500  # then at most `growth` times per batch, up to the target


def test_a_misleading_first_item_is_bounded():
    sizer = BatchSizer(target=0.5, max_size=10_000)
    sizer.observe(1, 1e-9)  # an item that did nothing
    assert sizer.size == 10_000
    sizer.observe(10_000, 5.0)  # the real ones take 0.5 ms each
    assert sizer.size < 10_000


def test_long_items_go_one_per_task():
    sizer = BatchSizer()
    sizer.observe(1, 0.001)
    sizer.observe(100, 100 * 2 * LONG_ITEM)
    sizer.observe(1, 2 * LONG_ITEM)
    assert sizer.size == 1


def test_tail_shrinks_but_not_below_the_smallest_worthwhile_batch():
    sizer = BatchSizer(target=0.5, min_seconds=0.01)
    sizer.observe(1, 0.001)  # 1 ms items: 10 of them are worth a task
    sizes = []
    remaining = 2000
    for _ in range(2000):  # bounded: each batch takes at least one item
        if not remaining:
            break
        size = sizer.next_size(threads=2, remaining=remaining, cap=None)
        sizes.append(size)
        remaining -= size
    assert sizes[0] == 125
    assert sizes[:-1] == sorted(sizes[:-1], reverse=True)  # shrinking towards the end
    assert min(sizes) == 10  # down to 10 ms of work, never below
    assert 10 <= sizes[-1] < 2 * 10  # the last batch takes what would have been a sliver
    assert sum(sizes) == 2000


def test_a_sliver_of_room_waits_while_batches_run():
    sizer = BatchSizer()
    sizer.observe(1, 0.001)
    assert sizer.next_size(threads=2, remaining=1000, cap=3, busy=True) == 0
    # nothing running: the cap (a small buffersize) is what there is
    assert sizer.next_size(threads=2, remaining=1000, cap=3, busy=False) == 3
    # the last items of the run go even as a sliver
    assert sizer.next_size(threads=2, remaining=3, cap=3, busy=True) == 3


def test_fixed_size_never_changes():
    sizer = BatchSizer(7)
    sizer.observe(7, 0.0001)
    assert sizer.next_size(threads=4, remaining=2, cap=None) == 7
    assert sizer.next_size(threads=4, remaining=None, cap=5, busy=True) == 5


def test_the_window_counts_batches_and_the_start_ramps():
    sizer = BatchSizer()
    # before a measurement: one batch of 1 item and one of 2 per thread, sent at once
    assert [sizer.next_size(threads=2, remaining=None, cap=None, batches=b)
            for b in range(4)] == [1, 1, 2, 2]
    assert sizer.window(threads=2) == 4
    sizer.observe(1, 0.001)
    assert sizer.window(threads=2) == 4  # one running and one waiting per thread
    assert sizer.item_window(threads=2) == 4 * sizer.size


def test_a_buffersize_holds_two_batches_per_thread():
    sizer = BatchSizer()
    sizer.observe(1, 0.0001)  # would make batches of 1,250 items
    assert sizer.next_size(threads=2, remaining=None, cap=40, buffersize=40) == 10
    # with 10 items of room left while batches run, a batch of 10 goes; with 4, it waits
    assert sizer.next_size(threads=2, remaining=None, cap=10, buffersize=40, busy=True) == 10
    assert sizer.next_size(threads=2, remaining=None, cap=4, buffersize=40, busy=True) == 0


def test_first_share_and_tail_split_set_the_start_and_the_tail():
    sizer = BatchSizer(target=0.5, first_share=0.5, tail_split=1.0)
    sizer.observe(1, 0.001)
    assert sizer.size == 250  # half the target at the first measurement
    # the tail takes remaining / (1.0 * threads) instead of remaining / (2 * threads)
    assert sizer.next_size(threads=2, remaining=400, cap=None) == 200


def test_a_stream_keeps_its_batches_to_a_share_of_its_age():
    sizer = BatchSizer(target=0.5)
    sizer.observe(1, 0.001)
    sizer.observe(125, 0.125)
    assert sizer.size == 500  # 0.5 s of 1 ms items
    young = sizer.next_size(threads=2, remaining=None, cap=None, elapsed=0.2)
    older = sizer.next_size(threads=2, remaining=None, cap=None, elapsed=2.0)
    old = sizer.next_size(threads=2, remaining=None, cap=None, elapsed=60.0)
    assert (young, older, old) == (100, 250, 500)  # the floor, an eighth of 2 s, the target
    # a known total has its tail instead; a fixed size is never changed
    assert sizer.next_size(threads=2, remaining=100_000, cap=None, elapsed=0.2) == 500
    fixed = BatchSizer(300)
    assert fixed.next_size(threads=2, remaining=None, cap=None, elapsed=0.2) == 300
