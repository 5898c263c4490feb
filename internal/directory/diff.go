package directory

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Change is one difference between two directories.
type Change struct {
	Section string // "directory", "participant", "node", "type", "policy"
	Key     string // the entry's ID (or rule number)
	What    string // "added", "removed", "changed"
	Detail  string // for "changed": old → new, as JSON
}

func (c Change) String() string {
	if c.Detail != "" {
		return fmt.Sprintf("%-11s %-20s %-8s %s", c.Section, c.Key, c.What, c.Detail)
	}
	return fmt.Sprintf("%-11s %-20s %s", c.Section, c.Key, c.What)
}

// Diff lists what changed from a to b, section by section, in a stable
// order.
func Diff(a, b *Directory) []Change {
	var out []Change
	scalar := func(key string, x, y any) {
		if fmt.Sprint(x) != fmt.Sprint(y) {
			out = append(out, Change{"directory", key, "changed", fmt.Sprintf("%v → %v", x, y)})
		}
	}
	scalar("version", a.Version, b.Version)
	scalar("environment", a.Environment, b.Environment)
	scalar("issued", a.Issued.UTC(), b.Issued.UTC())
	if ja, jb := js(a.Hub), js(b.Hub); ja != jb {
		out = append(out, Change{"directory", "hub", "changed", ja + " → " + jb})
	}
	out = append(out, diffList("participant", entries(a.Participants, func(p Participant) string { return p.ID }), entries(b.Participants, func(p Participant) string { return p.ID }))...)
	out = append(out, diffList("node", entries(a.Nodes, func(n Node) string { return n.ID }), entries(b.Nodes, func(n Node) string { return n.ID }))...)
	out = append(out, diffList("type", entries(a.Types, func(t Type) string { return t.Name }), entries(b.Types, func(t Type) string { return t.Name }))...)
	out = append(out, diffList("policy", entries(a.Policy, func(r Rule) string { return r.From + "→" + fmt.Sprint(r.To) }), entries(b.Policy, func(r Rule) string { return r.From + "→" + fmt.Sprint(r.To) }))...)
	out = append(out, diffList("hold", entries(a.Holds, func(h Hold) string { return h.ID }), entries(b.Holds, func(h Hold) string { return h.ID }))...)
	out = append(out, diffList("bulletin", entries(a.Bulletins, func(x Bulletin) string { return x.ID }), entries(b.Bulletins, func(x Bulletin) string { return x.ID }))...)
	return out
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type entry struct{ key, json string }

func entries[T any](xs []T, key func(T) string) []entry {
	var out []entry
	for _, x := range xs {
		out = append(out, entry{key(x), js(x)})
	}
	return out
}

func diffList(section string, a, b []entry) []Change {
	am, bm := map[string]string{}, map[string]string{}
	var keys []string
	for _, e := range a {
		am[e.key] = e.json
		keys = append(keys, e.key)
	}
	for _, e := range b {
		bm[e.key] = e.json
		if _, ok := am[e.key]; !ok {
			keys = append(keys, e.key)
		}
	}
	slices.Sort(keys)
	var out []Change
	for _, k := range slices.Compact(keys) {
		x, inA := am[k]
		y, inB := bm[k]
		switch {
		case !inA:
			out = append(out, Change{section, k, "added", ""})
		case !inB:
			out = append(out, Change{section, k, "removed", ""})
		case x != y:
			out = append(out, Change{section, k, "changed", x + " → " + y})
		}
	}
	return out
}
