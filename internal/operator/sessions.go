package operator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// tokenLen is the length of a session token or CSRF token: 32 random
// bytes in unpadded base64url (base64.RawURLEncoding.EncodedLen(32)).
const tokenLen = 43

// MaxFromLen bounds Session.From.
const MaxFromLen = 256

// newToken returns 32 random bytes in unpadded base64url.
func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("operator: reading a random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// tokenHash returns the SHA-256 of a well-formed session token, or false
// for anything that cannot be a token.
func tokenHash(token string) ([]byte, bool) {
	if len(token) != tokenLen {
		return nil, false
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(token); err != nil || len(b) != 32 {
		return nil, false
	}
	h := sha256.Sum256([]byte(token))
	return h[:], true
}

// errNoSession is the error for a token that names no session; the token
// itself is never part of an error.
func errNoSession(op string) error {
	return fmt.Errorf("operator: %s: %w: no such session", op, ErrNotFound)
}

// NewSession signs the operator id in from the remote address from (at
// most MaxFromLen bytes of printable text, may be empty): it returns a new
// Session with a random token as ID and a random CSRF token, Created,
// LastSeen and AuthAt now. The token is returned only here; the store
// keeps its SHA-256. The operator must be able to sign in, checked in the
// same transaction: ErrLocked, ErrState or ErrNotFound as for CanSignIn.
// ErrInvalid for a malformed id or from.
func (s *Store) NewSession(ctx context.Context, id, from string) (Session, error) {
	if err := checkID("operator ID", id); err != nil {
		return Session{}, err
	}
	if err := checkText("remote address", from, MaxFromLen, false); err != nil {
		return Session{}, err
	}
	token, err := newToken()
	if err != nil {
		return Session{}, err
	}
	csrf, err := newToken()
	if err != nil {
		return Session{}, err
	}
	hash, _ := tokenHash(token)
	now := fromNS(toNS(s.now())) // as it reads back from the database
	sess := Session{ID: token, Operator: id, CSRF: csrf, From: from, Created: now, LastSeen: now, AuthAt: now}
	err = s.write(ctx, "new session", func(tx *sql.Tx) error {
		r, err := s.getOp(ctx, tx, "new session", id)
		if err != nil {
			return err
		}
		if err := canSignIn(r.Operator); err != nil {
			return fmt.Errorf("operator: new session: %w", err)
		}
		ns := toNS(now)
		if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (hash, operator, csrf, remote, created_ns, last_seen_ns, auth_ns)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, hash, id, csrf, from, ns, ns, ns); err != nil {
			return s.fail("new session", err)
		}
		return nil
	})
	if err != nil {
		return Session{}, err
	}
	return sess, nil
}

const sessCols = `operator, csrf, remote, created_ns, last_seen_ns, auth_ns`

func scanSession(sc scanner) (Session, error) {
	var ss Session
	var created, seen, auth int64
	if err := sc.Scan(&ss.Operator, &ss.CSRF, &ss.From, &created, &seen, &auth); err != nil {
		return Session{}, err
	}
	ss.Created, ss.LastSeen, ss.AuthAt = fromNS(created), fromNS(seen), fromNS(auth)
	return ss, nil
}

// Session returns the session of the token (looked up by its SHA-256),
// with ID set to token. It fails with ErrNotFound for an unknown or
// malformed token, and for a session whose operator is no longer active
// (such sessions are deleted when the operator is locked or disabled;
// this is a second line of defence). The caller applies idle and absolute
// lifetimes.
func (s *Store) Session(ctx context.Context, token string) (Session, error) {
	hash, ok := tokenHash(token)
	if !ok {
		return Session{}, errNoSession("session")
	}
	if err := s.live(); err != nil {
		return Session{}, err
	}
	ss, err := scanSession(s.db.QueryRowContext(ctx, `SELECT `+sessCols+` FROM sessions
		WHERE hash = ? AND operator IN (SELECT id FROM operators WHERE state = ?)`, hash, string(StateActive)))
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, errNoSession("session")
	}
	if err != nil {
		return Session{}, s.fail("session", err)
	}
	ss.ID = token
	return ss, nil
}

// Touch records a request of the session of token: LastSeen becomes now.
// ErrNotFound for an unknown or malformed token.
func (s *Store) Touch(ctx context.Context, token string) error {
	return s.updateSession(ctx, "touch", token, `UPDATE sessions SET last_seen_ns = ?1 WHERE hash = ?2`)
}

// Reauthenticated records that the operator of the session of token has
// just authenticated again: AuthAt and LastSeen become now. ErrNotFound
// for an unknown or malformed token.
func (s *Store) Reauthenticated(ctx context.Context, token string) error {
	return s.updateSession(ctx, "reauthenticated", token, `UPDATE sessions SET last_seen_ns = ?1, auth_ns = ?1 WHERE hash = ?2`)
}

// updateSession runs query with ?1 the current time and ?2 the token's
// hash.
func (s *Store) updateSession(ctx context.Context, op, token, query string) error {
	hash, ok := tokenHash(token)
	if !ok {
		return errNoSession(op)
	}
	now := toNS(s.now())
	return s.write(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, now, hash)
		if err := s.affected(op, "session", res, err); err != nil {
			if errors.Is(err, ErrNotFound) {
				return errNoSession(op)
			}
			return err
		}
		return nil
	})
}

// EndSession deletes the session of token (sign-out). ErrNotFound for an
// unknown or malformed token (for example one already ended).
func (s *Store) EndSession(ctx context.Context, token string) error {
	hash, ok := tokenHash(token)
	if !ok {
		return errNoSession("end session")
	}
	return s.write(ctx, "end session", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE hash = ?`, hash)
		if err := s.affected("end session", "session", res, err); err != nil {
			if errors.Is(err, ErrNotFound) {
				return errNoSession("end session")
			}
			return err
		}
		return nil
	})
}

// EndAllSessions deletes every session of the operator id (sign out
// everywhere) and returns how many there were. ErrNotFound if the operator
// does not exist; ErrInvalid for a malformed id.
func (s *Store) EndAllSessions(ctx context.Context, id string) (int, error) {
	if err := checkID("operator ID", id); err != nil {
		return 0, err
	}
	var n int64
	err := s.write(ctx, "end all sessions", func(tx *sql.Tx) error {
		if _, err := s.getOp(ctx, tx, "end all sessions", id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE operator = ?`, id)
		if err != nil {
			return s.fail("end all sessions", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return s.fail("end all sessions", err)
		}
		return nil
	})
	return int(n), err
}

// Sessions returns the sessions of the operator id, oldest first, with an
// empty ID (the store does not know the tokens). ErrNotFound if the
// operator does not exist; ErrInvalid for a malformed id.
func (s *Store) Sessions(ctx context.Context, id string) ([]Session, error) {
	if err := checkID("operator ID", id); err != nil {
		return nil, err
	}
	if err := s.live(); err != nil {
		return nil, err
	}
	if _, err := s.getOp(ctx, s.db, "sessions", id); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+sessCols+` FROM sessions WHERE operator = ? ORDER BY created_ns, hash`, id)
	if err != nil {
		return nil, s.fail("sessions", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		ss, err := scanSession(rows)
		if err != nil {
			return nil, s.fail("sessions", err)
		}
		out = append(out, ss)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("sessions", err)
	}
	return out, nil
}

// ExpireSessions deletes the sessions of every operator that were last
// seen more than idle ago (when idle > 0) or created more than maxAge ago
// (when maxAge > 0), and returns how many it deleted. ErrInvalid for a
// negative duration.
func (s *Store) ExpireSessions(ctx context.Context, idle, maxAge time.Duration) (int, error) {
	if idle < 0 || maxAge < 0 {
		return 0, invalidf("negative session lifetime")
	}
	if idle == 0 && maxAge == 0 {
		return 0, s.live()
	}
	now := s.now()
	seenBefore, createdBefore := int64(-1<<63), int64(-1<<63)
	if idle > 0 {
		seenBefore = toNS(now.Add(-idle))
	}
	if maxAge > 0 {
		createdBefore = toNS(now.Add(-maxAge))
	}
	var n int64
	err := s.write(ctx, "expire sessions", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE last_seen_ns < ? OR created_ns < ?`, seenBefore, createdBefore)
		if err != nil {
			return s.fail("expire sessions", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return s.fail("expire sessions", err)
		}
		return nil
	})
	return int(n), err
}
