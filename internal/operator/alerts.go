package operator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

func validSeverity(s string) bool {
	return s == SeverityInfo || s == SeverityWarning || s == SeverityCritical
}

// Alert records the security event a and returns it with ID assigned
// (increasing) and Time now; AckedBy and AckedAt are ignored. Kind is
// dot-separated lower-case segments (e.g. "auth.lockout", at most
// MaxKindLen bytes), Severity SeverityInfo, SeverityWarning or
// SeverityCritical, Subject (an operator or object ID, may be empty) at
// most MaxObjectLen bytes of printable text, Detail at most MaxDetailLen
// bytes of text (may span lines). ErrInvalid otherwise.
func (s *Store) Alert(ctx context.Context, a Alert) (Alert, error) {
	if !validKind(a.Kind) {
		return Alert{}, invalidf("malformed alert kind %q", clip(a.Kind))
	}
	if !validSeverity(a.Severity) {
		return Alert{}, invalidf("unknown alert severity %q", clip(a.Severity))
	}
	if err := checkText("alert subject", a.Subject, MaxObjectLen, false); err != nil {
		return Alert{}, err
	}
	if err := checkText("alert detail", a.Detail, MaxDetailLen, true); err != nil {
		return Alert{}, err
	}
	out := Alert{Time: fromNS(toNS(s.now())), Kind: a.Kind, Severity: a.Severity, Subject: a.Subject, Detail: a.Detail}
	err := s.write(ctx, "alert", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO alerts (time_ns, kind, severity, subject, detail) VALUES (?, ?, ?, ?, ?)`,
			toNS(out.Time), out.Kind, out.Severity, out.Subject, out.Detail)
		if err != nil {
			return s.fail("alert", err)
		}
		if out.ID, err = res.LastInsertId(); err != nil {
			return s.fail("alert", err)
		}
		return nil
	})
	if err != nil {
		return Alert{}, err
	}
	return out, nil
}

// Alerts returns up to limit alerts, newest (highest ID) first, only the
// unacknowledged ones if unackedOnly. A limit of 0 means
// DefaultListLimit; above MaxListLimit it is MaxListLimit. ErrInvalid for
// a negative limit.
func (s *Store) Alerts(ctx context.Context, limit int, unackedOnly bool) ([]Alert, error) {
	n, err := listLimit(limit)
	if err != nil {
		return nil, err
	}
	if err := s.live(); err != nil {
		return nil, err
	}
	where := "1"
	if unackedOnly {
		where = "acked_ns = 0"
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, time_ns, kind, severity, subject, detail, acked_by, acked_ns
		FROM alerts WHERE `+where+` ORDER BY id DESC LIMIT ?`, n)
	if err != nil {
		return nil, s.fail("alerts", err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		var a Alert
		var t, acked int64
		if err := rows.Scan(&a.ID, &t, &a.Kind, &a.Severity, &a.Subject, &a.Detail, &a.AckedBy, &acked); err != nil {
			return nil, s.fail("alerts", err)
		}
		a.Time, a.AckedAt = fromNS(t), fromNS(acked)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("alerts", err)
	}
	return out, nil
}

// AckAlert records that the operator by acknowledged the alert id
// (AckedBy by, AckedAt now). ErrState if it was already acknowledged;
// ErrNotFound; ErrInvalid for a malformed by.
func (s *Store) AckAlert(ctx context.Context, id int64, by string) error {
	if err := checkID("acknowledger", by); err != nil {
		return err
	}
	now := toNS(s.now())
	return s.write(ctx, "ack alert", func(tx *sql.Tx) error {
		var acked int64
		err := tx.QueryRowContext(ctx, `SELECT acked_ns FROM alerts WHERE id = ?`, id).Scan(&acked)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("operator: ack alert: %w: alert %d", ErrNotFound, id)
		}
		if err != nil {
			return s.fail("ack alert", err)
		}
		if acked != 0 {
			return fmt.Errorf("operator: ack alert: %w: alert %d is already acknowledged", ErrState, id)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE alerts SET acked_by = ?, acked_ns = ? WHERE id = ?`, by, now, id); err != nil {
			return s.fail("ack alert", err)
		}
		return nil
	})
}
