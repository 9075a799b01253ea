"""Which workers rank 0 declares lost, and the taint it sets on them."""

from ksi_multi.loss import OUT_OF_SERVICE, LossTracker, with_out_of_service

WORKERS = ["node02", "node03", "node04"]


def test_a_reported_loss_counts_at_once_and_only_once():
    t = LossTracker(WORKERS)
    assert t.observe(0, set(WORKERS), {"node03": "node container exited"}) == {
        "node03": "its agent reports: node container exited"}
    assert t.observe(5, set(WORKERS), {"node03": "node container exited"}) == {}
    assert t.lost == {"node03": "its agent reports: node container exited"}


def test_not_ready_long_enough_is_lost_and_a_blip_is_not():
    t = LossTracker(WORKERS, lost_after=60)
    assert t.observe(0, {"node02", "node03"}, {}) == {}
    assert t.observe(30, set(WORKERS), {}) == {}  # node04 came back: the clock restarts
    assert t.observe(40, {"node02", "node03"}, {}) == {}
    assert t.observe(99, {"node02", "node03"}, {}) == {}
    assert t.observe(100, {"node02", "node03"}, {}) == {"node04": "NotReady in Kubernetes for 60 s"}
    assert t.observe(200, {"node02", "node03"}, {}) == {}


def test_an_unanswered_look_neither_starts_nor_ends_the_clock():
    t = LossTracker(WORKERS, lost_after=10)
    assert t.observe(0, {"node02"}, {}) == {}
    assert t.observe(50, None, {}) == {}
    assert set(t.observe(51, {"node02"}, {})) == {"node03", "node04"}


def test_only_workers_can_be_lost():
    t = LossTracker(WORKERS, lost_after=0)
    assert t.observe(0, set(WORKERS), {"node01": "x", "elsewhere": "y"}) == {}


def test_out_of_service_taint_is_added_once_and_others_kept():
    other = {"key": "example.com/gpu", "effect": "NoSchedule"}
    once = with_out_of_service([other])
    assert once == [other, OUT_OF_SERVICE]
    assert with_out_of_service(once) == once
    assert with_out_of_service(None) == [OUT_OF_SERVICE]


def test_a_worker_whose_agent_went_silent_is_lost_naming_that():
    tracker = LossTracker(["node02", "node03"])
    assert tracker.observe(100.0, {"node01", "node02", "node03"}, {}, {"node03": 31.4}) == {
        "node03": "its agent stopped reporting 31 s ago (killed?)"}
    assert tracker.observe(105.0, {"node01", "node02", "node03"}, {}, {"node03": 36.0}) == {}  # once


def test_the_store_names_agents_whose_heartbeat_stopped():
    from ksi_multi.rendezvous import Rendezvous

    state = Rendezvous(["node01", "node02", "node03"])
    for rank in (1, 2):
        assert state.put({"rank": rank, "hostname": f"node0{rank + 1}", "key": "beat", "value": {}})[0] == 200
    state.when["beat"][2] -= 40  # node03's last heartbeat, 40 s ago
    assert list(state.silent("beat", 30)) == ["node03"]
    assert state.put({"rank": 1, "hostname": "node02", "key": "beat", "value": {"x": 1}})[0] == 400
