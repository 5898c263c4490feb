package operator

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
)

const apCols = `id, kind, object, params, summary, requested_by, requested_ns, state, decided_by, decided_ns, result`

func scanApproval(sc scanner) (Approval, error) {
	var (
		a                  Approval
		state              string
		requested, decided int64
	)
	if err := sc.Scan(&a.ID, &a.Kind, &a.Object, &a.Params, &a.Summary, &a.RequestedBy, &requested,
		&state, &a.DecidedBy, &decided, &a.Result); err != nil {
		return Approval{}, err
	}
	if len(a.Params) == 0 {
		a.Params = nil
	}
	a.State, a.RequestedAt, a.DecidedAt = ApprovalState(state), fromNS(requested), fromNS(decided)
	return a, nil
}

// expired reports whether the pending approval a is older than
// ApprovalTTL at now.
func expired(a Approval, now time.Time) bool {
	return a.State == ApprovalPending && now.Sub(a.RequestedAt) > ApprovalTTL
}

// effective returns a as the store reports it at now: a pending approval
// older than ApprovalTTL is expired, decided (without a decider) when it
// expired.
func effective(a Approval, now time.Time) Approval {
	if expired(a, now) {
		a.State, a.DecidedAt = ApprovalExpired, a.RequestedAt.Add(ApprovalTTL)
	}
	return a
}

// parseApprovalID validates a ULID and returns it in canonical form.
func parseApprovalID(id string) (string, error) {
	u, err := ulid.ParseStrict(id)
	if err != nil {
		return "", invalidf("malformed approval ID %q", clip(id))
	}
	return u.String(), nil
}

// Request records a request for a dangerous action, waiting for a second
// person's decision (Decide), and returns it: a new ULID as ID,
// RequestedAt now, State ApprovalPending; the decision fields of a are
// ignored. Kind is dot-separated lower-case segments (e.g.
// "records.erase", at most MaxKindLen bytes); Object 1..MaxObjectLen bytes
// of printable text (no personal data); Params empty or JSON of at most
// MaxParamsLen bytes; Summary at most MaxSummaryLen bytes of text (may
// span lines); RequestedBy an operator ID. ErrInvalid otherwise.
func (s *Store) Request(ctx context.Context, a Approval) (Approval, error) {
	if !validKind(a.Kind) {
		return Approval{}, invalidf("malformed approval kind %q", clip(a.Kind))
	}
	if a.Object == "" {
		return Approval{}, invalidf("empty approval object")
	}
	if err := checkText("approval object", a.Object, MaxObjectLen, false); err != nil {
		return Approval{}, err
	}
	if len(a.Params) > MaxParamsLen {
		return Approval{}, invalidf("approval parameters are longer than %d bytes", MaxParamsLen)
	}
	if len(a.Params) > 0 && !json.Valid(a.Params) {
		return Approval{}, invalidf("approval parameters are not JSON")
	}
	if err := checkText("approval summary", a.Summary, MaxSummaryLen, true); err != nil {
		return Approval{}, err
	}
	if err := checkID("requester", a.RequestedBy); err != nil {
		return Approval{}, err
	}
	now := fromNS(toNS(s.now()))
	id, err := ulid.New(ulid.Timestamp(now), rand.Reader)
	if err != nil {
		return Approval{}, fmt.Errorf("operator: request: making an ID: %w", err)
	}
	out := Approval{
		ID: id.String(), Kind: a.Kind, Object: a.Object, Params: append([]byte(nil), a.Params...),
		Summary: a.Summary, RequestedBy: a.RequestedBy, RequestedAt: now, State: ApprovalPending,
	}
	if len(out.Params) == 0 {
		out.Params = nil
	}
	err = s.write(ctx, "request", func(tx *sql.Tx) error {
		params := out.Params
		if params == nil {
			params = []byte{}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO approvals (id, kind, object, params, summary, requested_by, requested_ns, state)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, out.ID, out.Kind, out.Object, params, out.Summary, out.RequestedBy,
			toNS(now), string(ApprovalPending)); err != nil {
			return s.fail("request", err)
		}
		return nil
	})
	if err != nil {
		return Approval{}, err
	}
	return out, nil
}

// getApproval reads the approval id as stored (not made effective).
func (s *Store) getApproval(ctx context.Context, q querier, op, id string) (Approval, error) {
	a, err := scanApproval(q.QueryRowContext(ctx, `SELECT `+apCols+` FROM approvals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Approval{}, fmt.Errorf("operator: %s: %w: approval %s", op, ErrNotFound, id)
	}
	if err != nil {
		return Approval{}, s.fail(op, err)
	}
	return a, nil
}

// Approval returns the approval id; a pending one older than ApprovalTTL
// is reported ApprovalExpired. ErrNotFound; ErrInvalid for an ID that is
// not a ULID.
func (s *Store) Approval(ctx context.Context, id string) (Approval, error) {
	id, err := parseApprovalID(id)
	if err != nil {
		return Approval{}, err
	}
	if err := s.live(); err != nil {
		return Approval{}, err
	}
	a, err := s.getApproval(ctx, s.db, "approval", id)
	if err != nil {
		return Approval{}, err
	}
	return effective(a, s.now()), nil
}

// Approvals returns up to limit approvals in state (all states if state is
// ""), newest first; pending ones older than ApprovalTTL count as
// ApprovalExpired. A limit of 0 means DefaultListLimit; above MaxListLimit
// it is MaxListLimit. ErrInvalid for an unknown state or a negative
// limit.
func (s *Store) Approvals(ctx context.Context, state ApprovalState, limit int) ([]Approval, error) {
	if state != "" && !state.Valid() {
		return nil, invalidf("unknown approval state %q", clip(string(state)))
	}
	n, err := listLimit(limit)
	if err != nil {
		return nil, err
	}
	if err := s.live(); err != nil {
		return nil, err
	}
	now := s.now()
	cutoff := toNS(now.Add(-ApprovalTTL)) // pending and requested before cutoff: expired
	var where string
	args := []any{}
	switch state {
	case "":
		where = "1"
	case ApprovalPending:
		where, args = "state = ? AND requested_ns >= ?", []any{string(ApprovalPending), cutoff}
	case ApprovalExpired:
		where, args = "state = ? OR (state = ? AND requested_ns < ?)", []any{string(ApprovalExpired), string(ApprovalPending), cutoff}
	default:
		where, args = "state = ?", []any{string(state)}
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+apCols+` FROM approvals WHERE `+where+
		` ORDER BY requested_ns DESC, id DESC LIMIT ?`, append(args, n)...)
	if err != nil {
		return nil, s.fail("approvals", err)
	}
	defer rows.Close()
	var out []Approval
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, s.fail("approvals", err)
		}
		out = append(out, effective(a, now))
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("approvals", err)
	}
	return out, nil
}

// Decide records the decision of the operator by on the approval id.
//
// It refuses with ErrSelfApproval when by is the approval's RequestedBy,
// and with ErrState unless the approval is pending; a pending approval
// older than ApprovalTTL is recorded as ApprovalExpired and refused with
// ErrState. Concurrent Decide calls on the same approval, in this or
// another process, are serialized by claiming the row in a transaction:
// exactly one wins, the others get ErrState.
//
// If !approve, the approval becomes ApprovalRejected (DecidedBy by,
// DecidedAt now) and exec is not called (it may be nil).
//
// If approve, the approval becomes ApprovalExecuting (DecidedBy by,
// DecidedAt now) and exec is called once, outside any transaction, with
// ctx and the approval in that state. Then the approval becomes
// ApprovalExecuted with Result exec's text, or ApprovalFailed with Result
// exec's error text (both truncated to MaxSummaryLen bytes, control
// characters replaced; they must not hold personal data or secrets). The
// outcome is recorded even if ctx is cancelled meanwhile. If exec panics,
// ApprovalFailed is recorded and the panic goes on. If the process dies
// while exec runs, the approval stays ApprovalExecuting for a person to
// inspect.
//
// Decide returns the approval as finally recorded; exec's error is not
// returned as an error (it is in Result, with State ApprovalFailed).
// ErrNotFound; ErrInvalid for a malformed ID, a malformed by, or a nil
// exec when approving.
func (s *Store) Decide(ctx context.Context, id, by string, approve bool, exec func(ctx context.Context, a Approval) (string, error)) (Approval, error) {
	id, err := parseApprovalID(id)
	if err != nil {
		return Approval{}, err
	}
	if err := checkID("decider", by); err != nil {
		return Approval{}, err
	}
	if approve && exec == nil {
		return Approval{}, invalidf("no executor for an approval")
	}
	now := fromNS(toNS(s.now()))
	var a Approval
	var expiredNow bool
	err = s.write(ctx, "decide", func(tx *sql.Tx) error {
		var err error
		if a, err = s.getApproval(ctx, tx, "decide", id); err != nil {
			return err
		}
		if by == a.RequestedBy {
			return fmt.Errorf("operator: decide: %w: %q requested approval %s", ErrSelfApproval, by, id)
		}
		if expired(a, now) {
			a = effective(a, now)
			if _, err := tx.ExecContext(ctx, `UPDATE approvals SET state = ?, decided_ns = ? WHERE id = ? AND state = ?`,
				string(ApprovalExpired), toNS(a.DecidedAt), id, string(ApprovalPending)); err != nil {
				return s.fail("decide", err)
			}
			expiredNow = true
			return nil // commit the expiry, refuse below
		}
		if a.State != ApprovalPending {
			return fmt.Errorf("operator: decide: %w: approval %s is %s", ErrState, id, a.State)
		}
		next := ApprovalRejected
		if approve {
			next = ApprovalExecuting
		}
		res, err := tx.ExecContext(ctx, `UPDATE approvals SET state = ?, decided_by = ?, decided_ns = ? WHERE id = ? AND state = ?`,
			string(next), by, toNS(now), id, string(ApprovalPending))
		if err != nil {
			return s.fail("decide", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return s.fail("decide", err)
		} else if n != 1 {
			return fmt.Errorf("operator: decide: %w: approval %s was decided meanwhile", ErrState, id)
		}
		a.State, a.DecidedBy, a.DecidedAt = next, by, now
		return nil
	})
	if err != nil {
		return Approval{}, err
	}
	if expiredNow {
		return Approval{}, fmt.Errorf("operator: decide: %w: approval %s expired", ErrState, id)
	}
	if !approve {
		return a, nil
	}

	finished := false
	defer func() {
		if finished {
			return
		}
		// exec panicked: record the failure, then let the panic go on.
		_, _ = s.finish(context.WithoutCancel(ctx), a, ApprovalFailed, "the executor panicked")
	}()
	result, execErr := exec(ctx, a)
	finished = true
	if execErr != nil {
		return s.finish(context.WithoutCancel(ctx), a, ApprovalFailed, execErr.Error())
	}
	return s.finish(context.WithoutCancel(ctx), a, ApprovalExecuted, result)
}

// finish records the outcome of the executing approval a.
func (s *Store) finish(ctx context.Context, a Approval, state ApprovalState, result string) (Approval, error) {
	a.State, a.Result = state, truncate(result, MaxSummaryLen)
	err := s.write(ctx, "decide: record the outcome", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE approvals SET state = ?, result = ? WHERE id = ? AND state = ?`,
			string(a.State), a.Result, a.ID, string(ApprovalExecuting))
		if err != nil {
			return s.fail("decide: record the outcome", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return s.fail("decide: record the outcome", err)
		} else if n != 1 {
			return fmt.Errorf("operator: decide: record the outcome: %w: approval %s is no longer executing", ErrState, a.ID)
		}
		return nil
	})
	if err != nil {
		return a, err
	}
	return a, nil
}
