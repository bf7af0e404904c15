import pytest

from nasbox.errors import NasboxError
from nasbox.spaces import get_space
from nasbox.strategies import get_strategy

NB201 = get_space("nb201")


def _conv_count(arch) -> float:
    return float(sum(op == "nor_conv_3x3" for op in arch.ops))


def test_controller_is_the_papers_lstm():
    strategy = get_strategy("ppo", NB201, seed=0)
    policy = strategy.policy
    assert policy.lstm.hidden_size == 100
    assert all(p.abs().max() <= 0.1 for p in policy.parameters())
    assert strategy.optimizer.param_groups[0]["lr"] == 0.00035
    assert strategy.minibatch == 20 and strategy.entropy_weight == 1e-5
    assert strategy.baseline_decay == 0.95


@pytest.mark.parametrize("name", ["ppo", "lstm-reinforce"])
def test_seeded_and_never_repeats(name):
    first = get_strategy(name, NB201, seed=4)
    proposals = [first.ask() for _ in range(60)]
    assert len(set(proposals)) == 60
    again = get_strategy(name, NB201, seed=4)
    assert [again.ask() for _ in range(60)] == proposals


def test_results_may_arrive_in_any_order():
    strategy = get_strategy("ppo", NB201, seed=0, minibatch=4)
    asked = [strategy.ask() for _ in range(6)]
    for arch in reversed(asked):
        strategy.tell(arch, _conv_count(arch))
    assert len(strategy.minibatch_rewards) == 1 and len(strategy.history) == 6
    with pytest.raises(NasboxError, match="did not ask"):
        strategy.tell(asked[0], 1.0)


@pytest.mark.parametrize("name", ["ppo", "lstm-reinforce"])
def test_controller_learns_to_prefer_rewarded_choices(name):
    strategy = get_strategy(name, NB201, seed=0, minibatch=10, learning_rate=0.01, distinct=False)
    for _ in range(120):
        arch = strategy.ask()
        strategy.tell(arch, _conv_count(arch))
    rewards = strategy.minibatch_rewards
    # a uniform policy averages 6/5 = 1.2 convolutions per cell
    assert sum(rewards[-5:]) / 5 > sum(rewards[:2]) / 2 + 0.8


def test_runs_on_nasnet_through_the_decision_sequence():
    space = get_space("nasnet")
    strategy = get_strategy("ppo", space, seed=1, minibatch=5)
    for _ in range(5):
        arch = strategy.ask()
        assert space.from_decisions(space.to_decisions(arch)) == arch
        strategy.tell(arch, float("-inf") if not strategy.history else 1.0)
    assert strategy.minibatch_rewards == [pytest.approx(0.8)]
