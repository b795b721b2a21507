package sim

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/phoenixhv/phoenix/providers/internal/shellwords"
)

// phoenix exec runs a person's command as the script phoenix/exec, whose
// body is exec and the command's words. The simulated container knows a few
// commands, enough to show output and exit statuses passing through.
func init() {
	builtinSteps["phoenix/exec"] = stepModel{apply: (*script).execCommand}
}

// execCommand models exec WORD...: echo, true, false, hostname and
// sh -c 'exit N'; any other command is not found, as sh says it.
func (x *script) execCommand() int {
	words, err := shellwords.Split(x.body)
	if err != nil || len(words) < 2 || words[0] != "exec" {
		return x.fail(2, "sh: 1: syntax error: phoenix/exec runs exec WORD...")
	}
	argv := words[1:]
	switch {
	case argv[0] == "echo":
		fmt.Fprintln(&x.out, strings.Join(argv[1:], " "))
	case argv[0] == "true":
	case argv[0] == "false":
		return 1
	case argv[0] == "hostname" && len(argv) == 1:
		host, _, _ := strings.Cut(x.g.conf.vals["hostname"], ".")
		fmt.Fprintln(&x.out, host)
	case argv[0] == "sh" && len(argv) == 3 && argv[1] == "-c" && strings.HasPrefix(argv[2], "exit "):
		code, err := strconv.Atoi(strings.TrimPrefix(argv[2], "exit "))
		if err != nil || code < 0 || code > 255 {
			return x.fail(2, "sh: 1: exit: Illegal number: %s", strings.TrimPrefix(argv[2], "exit "))
		}
		return code
	default:
		return x.fail(127, "sh: 1: exec: %s: not found", argv[0])
	}
	return 0
}
