package gateway

// CleanPath cleans a request path exactly as the gate does before deciding it: "." and ".."
// segments and repeated slashes resolved as path.Clean does, a trailing slash kept ("/admin/",
// "/admin/." and "/admin/x/.." all give "/admin/"), and a missing leading slash added. Tools
// that explain the gate's decisions (zonegate policy check) use it so that they see the path
// the policy sees.
func CleanPath(p string) string { return cleanPath(p) }
