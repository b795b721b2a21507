package spec

// Closest returns the word of known within two edits of name, ignoring case,
// or "": what a message suggests for a name it does not know.
func Closest(name string, known []string) string { return closest(name, known) }
