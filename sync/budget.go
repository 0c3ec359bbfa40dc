package sync

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultDeleteBudget is the number of deletes one reconcile may make when
// no budget is set.
const DefaultDeleteBudget = 50

// Budget bounds the deletes of one reconcile: a count, a percentage of the
// objects the sync owns, or unlimited. The zero value is
// DefaultDeleteBudget.
type Budget struct {
	// Count is the maximum number of deletes (when Percent is 0).
	Count int
	// Percent, when set, is the maximum share of the inventory to delete.
	Percent int
	// Unlimited turns the budget off.
	Unlimited bool
}

// ParseBudget reads "50" (a count), "10%" (a share of the owned objects)
// or "unlimited".
func ParseBudget(s string) (Budget, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Budget{}, nil
	case s == "unlimited":
		return Budget{Unlimited: true}, nil
	case strings.HasSuffix(s, "%"):
		p, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
		if err != nil || p < 1 || p > 100 {
			return Budget{}, fmt.Errorf("delete budget %q: a percentage must be 1%% to 100%%", s)
		}
		return Budget{Percent: p}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return Budget{}, fmt.Errorf("delete budget %q: want a positive count, a percentage like 10%%, or unlimited", s)
	}
	return Budget{Count: n}, nil
}

// Limit is the number of deletes allowed when the sync owns total objects.
func (b Budget) Limit(total int) int {
	switch {
	case b.Unlimited:
		return total
	case b.Percent > 0:
		// Round up, so a small inventory can always lose one object.
		return (total*b.Percent + 99) / 100
	case b.Count > 0:
		return b.Count
	}
	return DefaultDeleteBudget
}

// String prints the budget the way ParseBudget reads it.
func (b Budget) String() string {
	switch {
	case b.Unlimited:
		return "unlimited"
	case b.Percent > 0:
		return fmt.Sprintf("%d%%", b.Percent)
	case b.Count > 0:
		return strconv.Itoa(b.Count)
	}
	return strconv.Itoa(DefaultDeleteBudget)
}
