// board_main.cpp: the simulated board at the byte level. A board shell snn_board (rtl/board.py:
// host-link bridge -> Wishbone -> register block -> accelerator) is Verilated, and this harness
// is its host at the pins, so a host transport (firmware/ftdi_link.py: SimSpiPort, SimUartPort)
// sends the very bytes a board would receive. The link is chosen when compiling
// (firmware/fil.py sets it): SNN_LINK_UART for the UART shell (UartAccelerator: uart_rx,
// uart_tx; SNN_UART_DIVISOR clk cycles per bit), otherwise the SPI shell (SpiAccelerator:
// spi_sck, spi_cs_n, spi_mosi, spi_miso).
//
//   fil-spi serve | fil-uart serve
//       one command per line on stdin (the serve protocol of fil_main.cpp where they meet).
//     SPI:
//       "x HEXBYTES" -> "v HEXBYTES": one transaction, CS_N low around it. Each byte is
//           shifted out MSB first on MOSI, SCK idles low, HALF clk cycles per SCK phase
//           (default 2: SCK = clk / 4, the bridge's fastest); MISO is sampled just before
//           each rising SCK edge. CS_N then stays high for GAP clk cycles (default 4; the
//           bridge needs at least 3). The answer holds the bytes seen on MISO.
//       "k HALF GAP" sets the SCK phase and CS_N gap -> "ok" (HALF >= 2, GAP >= 3).
//     UART (8N1, LSB first, DIV clk cycles per bit; uart_tx is decoded all the time, each
//     bit sampled in its middle, and every byte with a high stop bit is queued):
//       "w HEXBYTES" -> "ok": the bytes sent on uart_rx back to back.
//       "r N LIMIT" -> "v HEXBYTES": the next N queued bytes, ticking until N are queued or
//           LIMIT clk cycles have passed: fewer (maybe none) then, as a serial port's read
//           returns on its timeout.
//       "k DIV" sets the host's clk cycles per bit -> "ok" (>= 4; default the shell's).
//       "f" -> "v COUNT": frames on uart_tx dropped for a low stop bit.
//     Both:
//       "i" -> "v IRQ" (the irq pin); "c" -> "v CYCLES" (clk cycles since start);
//       "t N" ticks N idle cycles (no answer); "p" pulses the rst pin (four cycles high,
//       then the reset synchronizer's release) -> "ok"; "s" -> "ok"; "q" quits.
//       Numbers are hexadecimal; a malformed command answers "e MESSAGE".
//   The board is reset (as "p") before the first command.
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "Vsnn_board.h"
#include "verilated.h"

namespace {

constexpr int kResetCycles = 4;
constexpr int kReleaseCycles = 4;  // the two-stage reset synchronizer releases after two

int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

bool parse_bytes(const std::string &text, std::vector<uint8_t> *out)
{
    out->clear();
    if (text.empty() || text.size() % 2 != 0) {
        return false;
    }
    for (size_t k = 0; k < text.size(); k += 2) {
        const int hi = hex_digit(text[k]), lo = hex_digit(text[k + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out->push_back(uint8_t(hi << 4 | lo));
    }
    return true;
}

void answer(const std::string &text)
{
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

void answer_bytes(const std::vector<uint8_t> &bytes)
{
    static const char kHex[] = "0123456789ABCDEF";
    std::string reply("v ");
    for (uint8_t b : bytes) {
        reply.push_back(kHex[b >> 4]);
        reply.push_back(kHex[b & 15]);
    }
    answer(reply);
}

void answer_number(uint64_t value)
{
    char text[32];
    std::snprintf(text, sizeof text, "v %" PRIX64, value);
    answer(text);
}

// The clock, reset and irq pins; a link adds its own and its commands.
class Board {
  public:
    explicit Board(Vsnn_board *top) : top_(top) {}
    virtual ~Board() = default;

    // The shell's inputs all enter flip-flops (synchronisers): they need no settling eval
    // before the edge, and the edge's eval computes every output.
    void tick()
    {
        top_->clk = 1;
        top_->eval();
        ++cycles_;
        top_->clk = 0;
        top_->eval();
        sample();
    }

    void wait(uint64_t n)
    {
        for (uint64_t k = 0; k < n; ++k) {
            tick();
        }
    }

    void reset()
    {
        top_->rst = 1;
        wait(kResetCycles);
        top_->rst = 0;
        wait(kReleaseCycles);
    }

    uint64_t cycles() const { return cycles_; }
    bool irq() const { return top_->irq != 0; }

    // Handles ``line`` if it is one of the link's commands (and answers it).
    virtual bool command(const std::string &line) = 0;

  protected:
    virtual void sample() {}  // after every clock edge

    Vsnn_board *top_;

  private:
    uint64_t cycles_ = 0;
};

#if defined(SNN_LINK_UART)

constexpr unsigned kMinDivisor = 4;

class UartMaster : public Board {
  public:
    explicit UartMaster(Vsnn_board *top) : Board(top) { top_->uart_rx = 1; }

    void send(const std::vector<uint8_t> &out)
    {
        for (uint8_t byte : out) {
            bit(0);  // start
            for (int k = 0; k < 8; ++k) {
                bit((byte >> k) & 1u);
            }
            bit(1);  // stop
        }
    }

    // Up to n queued bytes: ticks until n are queued or limit cycles have passed.
    void receive(size_t n, uint64_t limit, std::vector<uint8_t> *in)
    {
        for (uint64_t k = 0; queue_.size() < n && k < limit; ++k) {
            tick();
        }
        const size_t got = queue_.size() < n ? queue_.size() : n;
        in->assign(queue_.begin(), queue_.begin() + got);
        queue_.erase(queue_.begin(), queue_.begin() + got);
    }

    bool command(const std::string &line) override
    {
        std::vector<uint8_t> bytes;
        unsigned n = 0;
        unsigned long long limit = 0;
        switch (line[0]) {
        case 'w':
            if (line.size() < 3 || line[1] != ' ' || !parse_bytes(line.substr(2), &bytes)) {
                answer("e bad bytes to send (an even number of hexadecimal digits): " + line.substr(0, 40));
            } else {
                send(bytes);
                answer("ok");
            }
            return true;
        case 'r':
            if (std::sscanf(line.c_str() + 1, "%x %llx", &n, &limit) != 2) {
                answer("e bad read (r N LIMIT): " + line.substr(0, 40));
            } else {
                receive(n, limit, &bytes);
                answer_bytes(bytes);
            }
            return true;
        case 'k':
            if (std::sscanf(line.c_str() + 1, "%x", &n) != 1 || n < kMinDivisor) {
                answer("e a UART bit needs at least 4 clk cycles: " + line.substr(0, 40));
            } else {
                divisor_ = n;
                answer("ok");
            }
            return true;
        case 'f':
            answer_number(framing_errors_);
            return true;
        default:
            return false;
        }
    }

  protected:
    // The receiver at the host's end of uart_tx: a falling edge starts a frame; the start
    // bit is checked in its middle, then every bit one bit time later.
    void sample() override
    {
        const unsigned level = top_->uart_tx & 1u;
        switch (state_) {
        case Rx::kIdle:
            if (!level) {
                state_ = Rx::kStart;
                timer_ = divisor_ / 2;
            }
            break;
        case Rx::kStart:
            if (--timer_ == 0) {
                state_ = level ? Rx::kIdle : Rx::kData;  // high again: a glitch
                timer_ = divisor_;
                bits_ = value_ = 0;
            }
            break;
        case Rx::kData:
            if (--timer_ == 0) {
                value_ |= level << bits_;
                timer_ = divisor_;
                if (++bits_ == 8) {
                    state_ = Rx::kStop;
                }
            }
            break;
        case Rx::kStop:
            if (--timer_ == 0) {
                if (level) {
                    queue_.push_back(uint8_t(value_));
                } else {
                    ++framing_errors_;
                }
                state_ = Rx::kIdle;
            }
            break;
        }
    }

  private:
    enum class Rx { kIdle, kStart, kData, kStop };

    void bit(unsigned level)
    {
        top_->uart_rx = level;
        wait(divisor_);
    }

    unsigned divisor_ = SNN_UART_DIVISOR;
    std::deque<uint8_t> queue_;
    Rx state_ = Rx::kIdle;
    unsigned timer_ = 0, bits_ = 0, value_ = 0;
    uint64_t framing_errors_ = 0;
};

using Link = UartMaster;
constexpr const char *kName = "fil-uart";

#else

constexpr unsigned kMinHalf = 2;  // SCK <= clk / 4
constexpr unsigned kMinGap = 3;   // CS_N high between transactions

class SpiMaster : public Board {
  public:
    explicit SpiMaster(Vsnn_board *top) : Board(top)
    {
        top_->spi_cs_n = 1;
        top_->spi_sck = 0;
        top_->spi_mosi = 0;
    }

    // One CS_N-low transaction, mode 0: MOSI changes while SCK is low, MISO is sampled at the
    // end of the low phase (just before the rising edge, where the bridge samples MOSI).
    void transfer(const std::vector<uint8_t> &out, std::vector<uint8_t> *in)
    {
        in->assign(out.size(), 0);
        top_->spi_sck = 0;
        top_->spi_cs_n = 0;
        wait(half_);
        for (size_t n = 0; n < out.size(); ++n) {
            unsigned value = 0;
            for (int bit = 7; bit >= 0; --bit) {
                top_->spi_mosi = (out[n] >> bit) & 1u;
                wait(half_);
                value = (value << 1) | (top_->spi_miso & 1u);
                top_->spi_sck = 1;
                wait(half_);
                top_->spi_sck = 0;
            }
            (*in)[n] = uint8_t(value);
        }
        wait(half_);
        top_->spi_cs_n = 1;
        top_->spi_mosi = 0;
        wait(gap_);
    }

    bool set_timing(unsigned half, unsigned gap)
    {
        if (half < kMinHalf || gap < kMinGap) {
            return false;
        }
        half_ = half;
        gap_ = gap;
        return true;
    }

    bool command(const std::string &line) override
    {
        std::vector<uint8_t> out, in;
        unsigned half = 0, gap = 0;
        if (line[0] == 'x' && line.size() > 2 && line[1] == ' ') {
            if (!parse_bytes(line.substr(2), &out)) {
                answer("e bad transaction bytes (an even number of hexadecimal digits): " + line.substr(2, 40));
            } else {
                transfer(out, &in);
                answer_bytes(in);
            }
            return true;
        }
        if (line[0] == 'k' && std::sscanf(line.c_str() + 1, "%x %x", &half, &gap) == 2) {
            if (set_timing(half, gap)) {
                answer("ok");
            } else {
                answer("e SCK phases need at least 2 clk cycles and the CS_N gap at least 3");
            }
            return true;
        }
        return false;
    }

  private:
    unsigned half_ = kMinHalf, gap_ = kMinGap + 1;
};

using Link = SpiMaster;
constexpr const char *kName = "fil-spi";

#endif

int serve(Board &board)
{
    std::ios::sync_with_stdio(false);
    std::string line;
    board.reset();
    while (std::getline(std::cin, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
            line.pop_back();
        }
        const char op = line.empty() ? '\0' : line[0];
        if (op == 'q') {
            break;
        }
        if (op != '\0' && board.command(line)) {
            continue;
        }
        if (op == 'i') {
            answer(board.irq() ? "v 1" : "v 0");
        } else if (op == 'c') {
            answer_number(board.cycles());
        } else if (op == 't' && line.size() > 2) {
            board.wait(std::strtoull(line.c_str() + 2, nullptr, 16));
        } else if (op == 'p') {
            board.reset();
            answer("ok");
        } else if (op == 's') {
            answer("ok");
        } else {
            answer("e bad command: " + line.substr(0, 40));
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char **argv)
{
    if (argc != 2 || std::string(argv[1]) != "serve") {
        std::fprintf(stderr, "usage: %s serve\n", kName);
        return 2;
    }
    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vsnn_board>(context.get());
    Link link(top.get());
    const int rc = serve(link);
    std::fflush(stdout);
    top->final();
    return rc;
}
