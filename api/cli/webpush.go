package cli

import (
	"context"
	"flag"
	"fmt"

	"pushlane/internal/vapidkey"
)

// runWebPush is `pushlane webpush keys [--env]`: it prints a new VAPID key pair for
// webpush.vapidPublicKey and webpush.vapidPrivateKey, as config.yaml lines or (--env) as
// environment variables. It needs no server.
func runWebPush(_ context.Context, env *runEnv, args []string) int {
	fs := flag.NewFlagSet(env.name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	asEnv := fs.Bool("env", false, "print PUSH_WEBPUSH_* environment variables instead of config.yaml lines")
	fs.Usage = func() {
		fmt.Fprint(env.stderr, `Usage: pushlane webpush keys [--env]

Prints a new VAPID key pair (base64url P-256 keys) for Web Push: the public key goes to browsers,
keep the private key secret. Each run prints a new pair; replacing the pair in use makes every
existing browser subscription stop working (browsers must subscribe again).

Flags:
`)
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] != "keys" {
		fs.Usage()
		return exitUsage
	}
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		env.errorf("unexpected argument %q", fs.Arg(0))
		return exitUsage
	}
	pair, err := vapidkey.Generate()
	if err != nil {
		env.errorf("%v", err)
		return exitFailed
	}
	if *asEnv {
		fmt.Fprintf(env.stdout, "PUSH_WEBPUSH_VAPIDPUBLICKEY=%s\nPUSH_WEBPUSH_VAPIDPRIVATEKEY=%s\n", pair.Public, pair.Private)
		return exitOK
	}
	fmt.Fprintf(env.stdout, "# A new VAPID key pair for config.yaml; keep the private key secret.\nwebpush:\n  vapidPublicKey: %q\n  vapidPrivateKey: %q\n", pair.Public, pair.Private)
	return exitOK
}
