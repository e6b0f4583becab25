"""``snnfpga bitstream``: a bitstream for a real board (synthesis, place and route, packing).

    snnfpga bitstream MODEL --board icebreaker|ulx3s [--clock MHZ] [--lanes P] [--seeds N]
                      [--data FILE] [--out DIR] [--json]
    snnfpga bitstream MODEL --board MY.pcf|MY.lpf --target ice40-up5k|ecp5-85k [...]

With a named board (rtl/boards.py: its oscillator, pins, PLL and host link) the design is the
board top: the oscillator through a PLL to the accelerator clock (default: the board's), reset
until the PLL locks, the SPI shell, ``irq`` on an LED. With a constraints file of your own
the design is the plain SPI shell (ports clk, rst, spi_sck, spi_cs_n, spi_mosi, spi_miso,
irq; your file places all seven and clocks ``clk`` at ``--clock``). The bitstream
(``<board>.bin`` for iCE40, ``<board>.bit`` for ECP5) and ``bitstream.json`` go to
``DIR`` (default ``out/bitstream/<board>``); ``snnfpga program DIR`` loads it. A model that
does not fit, or that misses the clock on every placement seed, is an error. Progress goes
to standard error.
"""

from __future__ import annotations

from pathlib import Path

from snnfpga.commands.common import clock_mhz, emit_json, lanes_option, positive_int
from snnfpga.errors import ConfigError

DEFAULT_OUT = "out/bitstream"
DESCRIPTION = __doc__.split("\n\n")[0]


def add_parser(subparsers) -> None:
    from snnfpga.rtl.boards import BOARDS
    from snnfpga.rtl.targets import TARGETS

    p = subparsers.add_parser("bitstream", description=DESCRIPTION,
                              help="a bitstream for a board (iCEBreaker, ULX3S, or your constraints file)")
    p.add_argument("model", metavar="MODEL", help="model directory, or a shipped name ('default', 'tiny', ...)")
    p.add_argument("--board", required=True, metavar="NAME|FILE",
                   help=f"board: {', '.join(f'{b.name} ({b.title})' for b in BOARDS.values())}; "
                        "or a .pcf / .lpf file of your own with --target")
    p.add_argument("--target", metavar="NAME", choices=tuple(TARGETS),
                   help="FPGA target of a constraints file of your own (a named board knows its own)")
    p.add_argument("--clock", type=clock_mhz, metavar="MHZ",
                   help="accelerator clock (default: the board's; the PLL makes the nearest it can)")
    p.add_argument("--lanes", type=lanes_option, metavar="P", help="parallel lanes (default: the target's)")
    p.add_argument("--seeds", type=positive_int, metavar="N",
                   help="placement seeds to try, the best Fmax kept (default: the target's, 3)")
    p.add_argument("--data", default="default", metavar="FILE",
                   help="images for the cycle model's latency figure (default: the bundled data)")
    p.add_argument("--out", metavar="DIR", help=f"output directory (default {DEFAULT_OUT}/<board>)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run)


def resolve_board(name: str, target_name: str | None):
    """``(board or None, constraints path or None, target)`` from ``--board`` / ``--target``."""
    from snnfpga.rtl.boards import BOARDS, get_board
    from snnfpga.rtl.targets import get_target

    if name in BOARDS:
        board = get_board(name)
        if target_name and target_name != board.target:
            raise ConfigError(f"the {board.name} board carries the {board.target} target, not {target_name}")
        return board, None, get_target(board.target)
    path = Path(name)
    if path.suffix.lower() in (".pcf", ".lpf"):
        if not path.is_file():
            raise ConfigError(f"constraints file not found: {path}")
        if not target_name:
            raise ConfigError("a constraints file of your own needs --target (the FPGA it is for)")
        return None, path, get_target(target_name)
    return get_board(name), None, None  # raises: unknown board, naming the choices


def run(args) -> int:
    from snnfpga.commands.synth import cycles_estimate, plan_for_target
    from snnfpga.rtl import cycle_model
    from snnfpga.rtl.bitstream import build
    from snnfpga.rtl.implement import Progress

    board, constraints, target = resolve_board(args.board, args.target)
    plan = plan_for_target(args.model, target, args.lanes)
    name = board.name if board else constraints.stem
    out = Path(args.out or Path(DEFAULT_OUT) / name)
    result = build(plan, target, out, board=board, constraints=constraints, clock_mhz=args.clock, seeds=args.seeds,
                   progress=Progress("bitstream " + name))
    cycles = cycles_estimate(plan, args.data)
    if cycles:
        result.update(cycles, **cycle_model.at_clock(cycles["cycles_per_image"], result["clock_mhz"]))
    result["out"] = str(out.resolve())
    where = result["board_title"] or f"{result['device']} ({constraints})"
    print(f"{where}: {result['model']}, {result['lanes_label']}, weights {result['weight_storage']}")
    print(f"  clock            {result['clock_mhz']:g} MHz"
          + (f" (PLL from the {result['oscillator_mhz']:g} MHz oscillator)" if board else "")
          + f"; Fmax {result['fmax_mhz']:.1f} MHz, slack {result['slack_mhz']:+.1f} MHz (best of seeds "
          + ", ".join(f"{s}: {f:.1f}" for s, f in result["fmax_by_seed"].items()) + ")")
    if target.family == "ice40":
        print(f"  resources        {result['logic_cells']:,} logic cells, EBR {result['ebr']}, "
              f"SPRAM {result['spram']}, DSP {result['dsps']}")
    else:
        print(f"  resources        {result['luts']:,} LUT4, {result['ffs']:,} flip-flops, "
              f"DP16KD {result['dp16kd']}, DSP {result['dsps']}")
    if result.get("latency_us"):
        print(f"  latency          {result['latency_us']:.1f} us per image at {result['clock_mhz']:g} MHz "
              f"({result['cycles_per_image']:,.0f} cycles, {result['cycles_source']})")
    print(f"  bitstream        {out / result['bitstream']} ({result['bitstream_bytes']:,} bytes, "
          f"sha256 {result['bitstream_sha256'][:16]}...)")
    print(f"  next             snnfpga program {out}" + (f"  (then: snnfpga infer {args.model} --board {name} "
                                                        f"--data default)" if board else ""))
    if args.json:
        emit_json({k: v for k, v in result.items() if k != "capacity"})
    return 0
