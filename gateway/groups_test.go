package gateway

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestReadGroups(t *testing.T) {
	cases := []struct {
		name, claim, json string
		want              []string
		err               string
	}{
		{"default claim untouched", "", `{"groups":["a"],"roles":["r"]}`, []string{"a"}, ""},
		{"roles", "roles", `{"groups":["a"],"roles":["r1","r2"]}`, []string{"r1", "r2"}, ""},
		{"claim missing", "roles", `{"groups":["a"]}`, nil, ""},
		{"not a list", "roles", `{"roles":"admin"}`, nil, `claim "roles" is not a list of strings`},
		{"list of numbers", "roles", `{"roles":[1,2]}`, nil, `claim "roles" is not a list of strings`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &Gate{cfg: Config{OIDC: OIDC{GroupsClaim: tc.claim}}}
			claims := func(v any) error { return json.Unmarshal([]byte(tc.json), v) }
			var cl idClaims
			if err := claims(&cl); err != nil {
				t.Fatal(err)
			}
			err := g.readGroups(claims, &cl)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(cl.Groups, tc.want) {
				t.Fatalf("groups %q, %v; want %q", cl.Groups, err, tc.want)
			}
		})
	}
}
