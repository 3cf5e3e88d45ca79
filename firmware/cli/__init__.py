"""``chargepoint``: the command line.

The tools behind the commands are the modules of this package (``demo``, ``config``, ``auth``,
``certificate``, ``doctor``, ``hwtest``, ``release``, ``web``, and the doc generators ``keydoc``,
``filedoc`` and ``charging_doc``); the daemon never loads them.  They reach hardware only
through the composition root's ``firmware.app_devices`` (and the key registry through
``firmware.app_keys``).

Heavy modules (ocpp, pymodbus, gpiozero) are imported inside the commands that need them, so
``chargepoint --help`` and ``chargepoint bench status`` start quickly on a Pi.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "/etc/chargepoint/chargepoint.toml"


def _run(args: argparse.Namespace) -> int:
    from firmware import app, app_blocks, app_devices
    from firmware.settings import example_path
    from firmware.settings_load import load
    from firmware.tomlcheck import SettingsError

    # Without --config: the shipped bench example for the simulated bench, else the installed
    # file (where install/install.sh puts it).
    config = args.config or (
        example_path("bench") if args.hardware == "simulated" else DEFAULT_CONFIG
    )
    try:
        settings = load(Path(config)).with_overrides(
            csms_url=args.csms_url,
            charge_point_id=args.id,
            state_dir=Path(args.state_dir) if args.state_dir else None,
            hardware_kind=args.hardware,
        )
    except SettingsError as exc:
        hint = (
            ""
            if args.config or Path(config).exists()
            else " (give --config FILE, or --hardware simulated for the bench example)"
        )
        print(exc.lines("chargepoint: configuration error: ") + hint, file=sys.stderr)
        return 2
    from firmware.cli.config import ocpp_keys_problem

    problem = ocpp_keys_problem(settings)
    if problem:
        print(f"chargepoint: configuration error: {problem}", file=sys.stderr)
        return 2
    from firmware.release import launcher_command

    launcher = launcher_command(sys.argv[1:])
    if launcher is not None:
        # Run from an installed release by hand: through the launcher, as the service is
        # (it starts `current` and watches a release on trial; docs/firmware.md).
        os.execv(launcher[0], launcher)
    app.setup_logging(args.log_level or settings.log_level)
    from firmware.config_keys import KeyValueError
    from firmware.storage import StoreUnusable

    try:
        # A Reset or an update restarts the controller (exit for systemd or the launcher,
        # else os.execv in place: the launcher when a release is to start).
        status = asyncio.run(app.run(settings))
        return app.exit_or_restart(status, app_blocks.release_installer(settings).restart_argv())
    except KeyboardInterrupt:
        return 130
    except KeyValueError as exc:
        print(f"chargepoint: configuration error: {exc}", file=sys.stderr)
        return 2
    except app_devices.HardwareUnavailable as exc:
        print(f"chargepoint: {exc}", file=sys.stderr)
        return 2
    except StoreUnusable as exc:
        # A store or the state directory cannot be used, or another controller holds it: the
        # files are left as they were (starting over them would lose transactions or keys).
        print(f"chargepoint: cannot use {exc.path}: {exc.reason}", file=sys.stderr)
        return 2


def _csms(args: argparse.Namespace) -> int:
    from centralsystem.console import run_csms

    basic_auth = None
    if args.basic_auth:
        basic_auth = {}
        for item in args.basic_auth:
            cp_id, sep, password = item.partition(":")
            if not sep or not cp_id:
                print(
                    f"chargepoint csms: --basic-auth wants ID:PASSWORD, not {item!r}",
                    file=sys.stderr,
                )
                return 2
            basic_auth[cp_id] = password
    if args.client_ca and not args.tls_cert:
        print("chargepoint csms: --client-ca needs --tls-cert", file=sys.stderr)
        return 2
    try:
        asyncio.run(
            run_csms(
                args.host,
                args.port,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                client_ca=args.client_ca,
                basic_auth=basic_auth,
            )
        )
        # run_csms only returns when nobody reads its output (`chargepoint csms | head`)
        raise BrokenPipeError
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        raise  # main() ends quietly
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            hint = (
                " (is another chargepoint csms running? choose another --port)"
                if exc.errno == errno.EADDRINUSE
                else ""
            )
            print(
                f"chargepoint csms: cannot listen on {args.host}:{args.port}: "
                f"{os.strerror(exc.errno).lower()}{hint}",
                file=sys.stderr,
            )
        else:  # a certificate or key file that cannot be read or used
            print(f"chargepoint csms: {exc}", file=sys.stderr)
        return 2
    return 0


def _demo(args: argparse.Namespace) -> int:
    from firmware.cli.demo import run_demo
    from firmware.storage import StoreUnusable

    try:
        return asyncio.run(
            run_demo(
                minutes=args.minutes,
                verbose=args.verbose,
                state_dir=Path(args.state_dir) if args.state_dir else None,
                web=args.web,
                web_port=args.web_port,
            )
        )
    except StoreUnusable as exc:  # the same line as `chargepoint run`'s
        print(f"chargepoint demo: cannot use {exc.path}: {exc.reason}", file=sys.stderr)
        return 2


def _doctor(args: argparse.Namespace) -> int:
    from firmware.cli import doctor

    return doctor.main(Path(args.config), args.csms_url, network_timeout_s=args.timeout)


def _hw_test(args: argparse.Namespace) -> int:
    from firmware.cli import hwtest

    return hwtest.main(Path(args.config), yes=args.yes)


def _bench(args: argparse.Namespace) -> int:
    from firmware.app_devices import BENCH_SOCKET, bench_command

    request: dict[str, Any] = {"cmd": args.bench_cmd}
    if getattr(args, "connector", None) is not None:
        request["connector"] = args.connector
    if args.bench_cmd == "swipe":
        request["tag"] = args.tag
    if args.bench_cmd == "fault":
        request["name"], request["state"] = args.name, args.state
    if args.bench_cmd == "house-load":
        request["amps"] = args.amps
    socket = Path(args.state_dir) / BENCH_SOCKET
    try:
        answer = asyncio.run(bench_command(Path(args.state_dir), request))
    except TimeoutError:
        print(
            f"chargepoint bench: the controller did not answer on {socket} in time", file=sys.stderr
        )
        return 1
    except ConnectionRefusedError:
        print(
            f"chargepoint bench: no controller answers on {socket} (left over from a "
            f"stopped controller?)",
            file=sys.stderr,
        )
        return 1
    except PermissionError:
        print(
            f"chargepoint bench: no permission to use {socket}: run as the controller's user",
            file=sys.stderr,
        )
        return 1
    except (ConnectionError, OSError, ValueError) as exc:
        print(f"chargepoint bench: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))
    return 0 if answer.get("ok") else 1


def _config(args: argparse.Namespace) -> int:
    from firmware.cli import config as config_tool

    if args.config_cmd == "example":
        return config_tool.example(args.name)
    return config_tool.run(
        args.config_cmd,
        Path(args.config),
        Path(args.state_dir) if args.state_dir else None,
        getattr(args, "key", None),
        getattr(args, "value", None),
    )


def _auth(args: argparse.Namespace) -> int:
    from firmware.cli import auth as auth_tool

    return auth_tool.run(
        args.auth_cmd,
        Path(args.config),
        Path(args.state_dir) if args.state_dir else None,
        getattr(args, "id_tag", None),
    )


def _web(args: argparse.Namespace) -> int:
    from firmware.cli import web

    return web.password(args.stdin)


def _certificate(args: argparse.Namespace) -> int:
    from firmware.cli import certificate as cert_tool

    return cert_tool.run(
        args.certificate_cmd,
        Path(args.config),
        Path(args.state_dir) if args.state_dir else None,
        getattr(args, "kind", None),
        Path(args.file) if getattr(args, "file", None) else None,
    )


def _positive_seconds(text: str) -> float:
    """A duration in s: a finite number above 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text}")
    return value


def _amps(text: str) -> float:
    """A current in A: a finite number (argparse type; the bench checks its range)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of amperes: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def _tcp_port(text: str) -> int:
    """A TCP port to listen on, 0-65535 (0: any free port, which the server prints)
    (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 (any free port) to 65535, not {value}")
    return value


def _not_empty(text: str) -> str:
    """A value that is not empty or blank (argparse type): an empty --state-dir or --id is a
    mistake, not 'use the file's value'."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _state_options(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--state-dir``: the tools that read the device's stores (config, auth,
    certificate) find them as the daemon does."""
    parser.add_argument(
        "--config", default=DEFAULT_CONFIG, help="configuration file (default %(default)s)"
    )
    parser.add_argument(
        "--state-dir", type=_not_empty, help="state directory (default: from the file)"
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chargepoint", description="OCPP 1.6J charge point controller for Raspberry Pi"
    )
    from firmware.settings import package_version

    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the controller")
    run.add_argument(
        "--config",
        help=f"configuration file (TOML; default {DEFAULT_CONFIG}, or "
        "with --hardware simulated the bench example)",
    )
    run.add_argument(
        "--csms-url", type=_not_empty, help="central system URL, without the charge point id"
    )
    run.add_argument("--id", type=_not_empty, help="charge point identity")
    run.add_argument("--state-dir", type=_not_empty, help="where durable state lives")
    run.add_argument("--hardware", choices=["simulated", "gpio"])
    run.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)
    run.set_defaults(func=_run)

    csms = sub.add_parser("csms", help="run the bundled central system (bench work)")
    csms.add_argument("--host", default="127.0.0.1")
    csms.add_argument("--port", type=_tcp_port, default=9000)
    csms.add_argument("--tls-cert", help="serve wss:// with this certificate chain (PEM)")
    csms.add_argument("--tls-key", help="its private key (PEM; default: in --tls-cert)")
    csms.add_argument(
        "--client-ca", help="require client certificates signed by this CA (security profile 3)"
    )
    csms.add_argument(
        "--basic-auth",
        action="append",
        metavar="ID:PASSWORD",
        help="require HTTP Basic for this charge point (repeatable)",
    )
    csms.set_defaults(func=_csms)

    demo = sub.add_parser("demo", help="one whole charging session on the simulated bench")
    demo.add_argument(
        "--minutes",
        type=_positive_seconds,
        default=5.0,
        help="simulated minutes of charging (default 5)",
    )
    demo.add_argument(
        "--state-dir", type=_not_empty, help="keep state here instead of a temporary directory"
    )
    demo.add_argument("--verbose", action="store_true", help="also show the controller's log")
    demo.add_argument(
        "--web",
        action="store_true",
        help="serve the web page (docs/web.md) and keep running after the session until Ctrl-C",
    )
    demo.add_argument(
        "--web-port", type=_tcp_port, default=8080, help="the web page's port (default 8080)"
    )
    demo.set_defaults(func=_demo)

    doctor = sub.add_parser(
        "doctor",
        help="bring-up checks: config, pins, serial ports, "
        "meter, central system (OK / FAIL / SKIP each)",
    )
    doctor.add_argument(
        "--config", default=DEFAULT_CONFIG, help="configuration file (default %(default)s)"
    )
    doctor.add_argument("--csms-url", type=_not_empty, help="check this central system URL instead")
    doctor.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=5.0,
        help="seconds per network step (default %(default)s)",
    )
    doctor.set_defaults(func=_doctor)

    hw_test = sub.add_parser(
        "hw-test",
        help="exercise each output (lock, light, buzzer, contactor) with a confirmation per step",
    )
    hw_test.add_argument(
        "--config", default=DEFAULT_CONFIG, help="configuration file (default %(default)s)"
    )
    hw_test.add_argument(
        "--yes", action="store_true", help="run every step without asking (non-interactive)"
    )
    hw_test.set_defaults(func=_hw_test)

    bench = sub.add_parser("bench", help="drive the simulated bench of a running controller")
    bench.add_argument(
        "--state-dir", type=_not_empty, required=True, help="the controller's state directory"
    )
    bsub = bench.add_subparsers(dest="bench_cmd", required=True)
    for name, text in (
        ("plug", "plug an EV in (CP state B)"),
        ("unplug", "unplug the EV (CP state A)"),
        ("ev-charge", "the EV asks for power (CP state C)"),
        ("ev-pause", "the EV stops asking (CP state B)"),
    ):
        b = bsub.add_parser(name, help=text)
        b.add_argument("-c", "--connector", type=int, default=1)
    swipe = bsub.add_parser("swipe", help="present an RFID card")
    swipe.add_argument("tag")
    fault = bsub.add_parser("fault", help="inject or clear a hardware fault")
    fault.add_argument(
        "name", choices=["rcd", "estop", "weld", "lock", "meter", "diode", "grid-meter"]
    )
    fault.add_argument("state", choices=["on", "off"])
    fault.add_argument("-c", "--connector", type=int, default=1)
    house = bsub.add_parser(
        "house-load",
        help="the house's current on the grid meter, A per phase (one value: every phase; "
        "three: L1 L2 L3; 0-100)",
    )
    house.add_argument("amps", type=_amps, nargs="+", metavar="AMPS")
    bsub.add_parser("power-cut", help="mains lost: the UPS HAT's power-fail line ([power_fail])")
    bsub.add_parser("power-restore", help="mains back on the power-fail line")
    bsub.add_parser("status", help="connector states, outputs, lock and meter as JSON")
    bench.set_defaults(func=_bench)

    config = sub.add_parser(
        "config",
        help="list, get or set OCPP configuration keys on the device (the running daemon follows)",
    )
    _state_options(config)
    csub = config.add_subparsers(dest="config_cmd", required=True)
    csub.add_parser("list", help="every key with access, source and value")
    example = csub.add_parser(
        "example",
        help="print a commented example configuration file "
        "(pi: a real Pi, bench: the simulated bench)",
    )
    example.add_argument("name", choices=["pi", "bench"])
    get = csub.add_parser("get", help="one key's value")
    get.add_argument("key")
    set_ = csub.add_parser("set", help="set a key (same validation as ChangeConfiguration)")
    set_.add_argument("key")
    set_.add_argument("value")
    config.set_defaults(func=_config)

    auth = sub.add_parser(
        "auth",
        help="the Local Authorization List and the authorization cache on the device (read only)",
    )
    _state_options(auth)
    asub = auth.add_subparsers(dest="auth_cmd", required=True)
    asub.add_parser("list", help="the list's version and idTags, then the cache's")
    show = asub.add_parser("show", help="what the list and the cache know of one idTag")
    show.add_argument("id_tag", metavar="TAG", help="the idTag (case-insensitive)")
    auth.set_defaults(func=_auth)

    cert = sub.add_parser(
        "certificate",
        help="root certificates and the charge point certificate on the device (security profiles)",
    )
    _state_options(cert)
    certsub = cert.add_subparsers(dest="certificate_cmd", required=True)
    certsub.add_parser("list", help="installed root certificates and our certificate")
    install = certsub.add_parser("install", help="install a root certificate (PEM file)")
    install.add_argument("kind", choices=["central-system", "manufacturer"])
    install.add_argument("file")
    cert.set_defaults(func=_certificate)

    web = sub.add_parser("web", help="the local web page ([web], docs/web.md)")
    wsub = web.add_subparsers(dest="web_cmd", required=True)
    password = wsub.add_parser(
        "password", help="print the [web] password_hash line for a password (scrypt)"
    )
    password.add_argument(
        "--stdin", action="store_true", help="read the password from standard input, once"
    )
    web.set_defaults(func=_web)

    from firmware.cli import release

    release.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result: int = args.func(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        # Ctrl-C ends any tool quietly (demo, doctor, hw-test ...), with the shell's code.
        return 128 + signal.SIGINT
    except BrokenPipeError:
        # `chargepoint doctor | head`: the reader is gone, so is anyone to tell.  Point stdout
        # at /dev/null so that the interpreter's last flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return result


if __name__ == "__main__":
    sys.exit(main())
