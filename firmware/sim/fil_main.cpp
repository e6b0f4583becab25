// fil_main.cpp: firmware in the loop. The real C driver (snn_driver.c, compiled as C11) runs
// against the Verilated AcceleratorSystem (snn_top, interface wishbone, in the shell fil_top): its bus
// hooks perform Wishbone B4 classic cycles on the model, with a cycle limit per access.
//
//   fil run IMAGES [BLOB] [--timeout-polls N] [--ack-limit N]
//       snn_init, snn_load_weights_blob (when BLOB is given), then snn_infer and
//       snn_read_counters for every image of IMAGES ("SNNI", count, n_inputs: little-endian
//       u32; then the pixels); one JSON object per line on stdout.
//   fil serve [--ack-limit N]
//       register access server for the Python host driver, one command per line on stdin:
//       "r OFF" -> "v VALUE"; "w OFF VALUE" (no answer); "s" -> "ok"; "i" -> "v IRQ";
//       "c" -> "v CYCLES"; "t N" ticks N idle cycles; "q" quits. Numbers are hexadecimal.
//       A failed access answers "e MESSAGE" at the next r, s, i or c.
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "Vfil_top.h"
#include "verilated.h"

#include "snn_driver.h"

namespace {

constexpr uint32_t kDefaultAckLimit = 1000;
constexpr int kResetCycles = 4;

class WishboneMaster {
  public:
    WishboneMaster(Vfil_top *top, uint32_t ack_limit) : top_(top), ack_limit_(ack_limit) {}

    void reset()
    {
        top_->rst = 1;
        for (int k = 0; k < kResetCycles; ++k) {
            tick();
        }
        top_->rst = 0;
    }

    void tick()
    {
        top_->eval();  // settle the inputs driven since the last edge
        top_->clk = 1;
        top_->eval();
        ++cycles_;
        top_->clk = 0;
        top_->eval();
    }

    // One classic single access: assert cyc/stb with the address (and data), tick until ack,
    // sample dat_r, release the bus. False (with a message) when no ack comes in time.
    bool access(bool write, uint32_t offset, uint32_t data, uint32_t *read_value)
    {
        if ((offset & 3u) != 0 || offset >= SNN_ADDRESS_BYTES) {
            error_ = "bad address " + hex(offset) + " (aligned, below " + hex(SNN_ADDRESS_BYTES) + ")";
            return false;
        }
        top_->wb_adr = offset >> 2;
        top_->wb_we = write ? 1 : 0;
        top_->wb_dat_w = data;
        top_->wb_sel = 0xF;
        top_->wb_cyc = 1;
        top_->wb_stb = 1;
        for (uint32_t n = 0; n < ack_limit_; ++n) {
            tick();
            if (top_->wb_ack) {
                if (read_value != nullptr) {
                    *read_value = top_->wb_dat_r;
                }
                release();
                return true;
            }
        }
        release();
        error_ = "no Wishbone ack for " + std::string(write ? "write" : "read") + " at " + hex(offset) +
                 " within " + std::to_string(ack_limit_) + " cycles";
        return false;
    }

    uint64_t cycles() const { return cycles_; }
    bool irq() const { return top_->irq != 0; }
    const std::string &error() const { return error_; }
    void clear_error() { error_.clear(); }

  private:
    void release()
    {
        top_->wb_cyc = 0;
        top_->wb_stb = 0;
        top_->wb_we = 0;
    }

    static std::string hex(uint32_t value)
    {
        char text[16];
        std::snprintf(text, sizeof text, "0x%" PRIX32, value);
        return text;
    }

    Vfil_top *top_;
    uint32_t ack_limit_;
    uint64_t cycles_ = 0;
    std::string error_;
};

extern "C" int bus_read(void *ctx, uint32_t offset, uint32_t *value)
{
    return static_cast<WishboneMaster *>(ctx)->access(false, offset, 0, value) ? 0 : -1;
}

extern "C" int bus_write(void *ctx, uint32_t offset, uint32_t value)
{
    return static_cast<WishboneMaster *>(ctx)->access(true, offset, value, nullptr) ? 0 : -1;
}

bool read_file(const char *path, std::vector<uint8_t> *out)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return false;
    }
    out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return true;
}

uint32_t le32(const uint8_t *p)
{
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

void print_status(const char *event, snn_status_t status, const snn_dev_t &dev, const WishboneMaster &bus)
{
    std::printf("{\"event\": \"%s\", \"status\": %d, \"error\": \"%s\", \"hw_error\": %" PRIu32
                ", \"bus_error\": \"%s\", \"cycles\": %" PRIu64 "}\n",
                event, int(status), snn_strerror(status), snn_hw_error(&dev), bus.error().c_str(), bus.cycles());
}

int run(const char *images_path, const char *blob_path, uint32_t timeout_polls, WishboneMaster &bus)
{
    std::vector<uint8_t> images, blob;
    if (!read_file(images_path, &images) || images.size() < 12 || std::memcmp(images.data(), "SNNI", 4) != 0) {
        std::fprintf(stderr, "fil: %s is not an SNNI image file\n", images_path);
        return 2;
    }
    const uint32_t count = le32(&images[4]), n_inputs = le32(&images[8]);
    if (images.size() != 12 + size_t(count) * n_inputs) {
        std::fprintf(stderr, "fil: %s: size does not match %" PRIu32 " images of %" PRIu32 " pixels\n",
                     images_path, count, n_inputs);
        return 2;
    }
    if (blob_path != nullptr && !read_file(blob_path, &blob)) {
        std::fprintf(stderr, "fil: cannot read %s\n", blob_path);
        return 2;
    }

    snn_bus_t hooks = {bus_read, bus_write, &bus};
    snn_dev_t dev;
    bus.reset();
    snn_status_t status = snn_init(&dev, 0, &hooks);
    print_status("init", status, dev, bus);
    if (status != SNN_OK) {
        return 3;
    }
    dev.timeout_polls = timeout_polls;
    if (blob_path != nullptr) {
        status = snn_load_weights_blob(&dev, blob.data(), blob.size());
        print_status("weights", status, dev, bus);
        if (status != SNN_OK) {
            return 3;
        }
    }
    status = snn_set_irq(&dev, 1);
    if (status != SNN_OK) {
        print_status("irq", status, dev, bus);
        return 3;
    }

    std::vector<int32_t> scores(dev.n_classes);
    for (uint32_t n = 0; n < count; ++n) {
        const uint64_t start = bus.cycles();
        uint32_t cls = 0;
        status = snn_infer(&dev, &images[12 + size_t(n) * n_inputs], n_inputs, &cls, scores.data(), scores.size());
        const uint64_t latency = bus.cycles() - start;
        const bool irq = bus.irq();
        snn_counters_t counters;
        std::memset(&counters, 0, sizeof counters);
        const snn_status_t counter_status = snn_read_counters(&dev, &counters);
        if (status == SNN_OK) {
            status = counter_status;
        }
        std::printf("{\"event\": \"image\", \"index\": %" PRIu32 ", \"status\": %d, \"error\": \"%s\", "
                    "\"hw_error\": %" PRIu32 ", \"class\": %" PRIu32 ", \"scores\": [",
                    n, int(status), snn_strerror(status), snn_hw_error(&dev), cls);
        for (size_t j = 0; j < scores.size(); ++j) {
            std::printf("%s%" PRId32, j ? ", " : "", scores[j]);
        }
        std::printf("], \"spikes\": [");
        for (uint32_t s = 0; s < counters.n_stages; ++s) {
            std::printf("%s%" PRIu32, s ? ", " : "", counters.spikes[s]);
        }
        std::printf("], \"cycles\": %" PRIu32 ", \"images\": %" PRIu32 ", \"irq\": %d, \"bus_cycles\": %" PRIu64 "}\n",
                    counters.cycles, counters.images, irq ? 1 : 0, latency);
        if (status == SNN_ERR_BUS) {
            print_status("bus", status, dev, bus);
            return 3;
        }
        bus.clear_error();
    }
    std::printf("{\"event\": \"done\", \"cycles\": %" PRIu64 "}\n", bus.cycles());
    return 0;
}

int serve(WishboneMaster &bus)
{
    char line[256];
    std::string pending;  // a failed write, reported at the next answering command
    bus.reset();
    while (std::fgets(line, sizeof line, stdin) != nullptr) {
        char op = line[0];
        unsigned long a = 0, b = 0;
        bool answered = true;
        if (op == 'q') {
            break;
        }
        if (op == 'w' && std::sscanf(line + 1, "%lx %lx", &a, &b) == 2) {
            if (!bus.access(true, uint32_t(a), uint32_t(b), nullptr) && pending.empty()) {
                pending = bus.error();
            }
            answered = false;
        } else if (!pending.empty() && (op == 'r' || op == 's' || op == 'i' || op == 'c')) {
            std::printf("e %s\n", pending.c_str());
            pending.clear();
        } else if (op == 'r' && std::sscanf(line + 1, "%lx", &a) == 1) {
            uint32_t value = 0;
            if (bus.access(false, uint32_t(a), 0, &value)) {
                std::printf("v %" PRIX32 "\n", value);
            } else {
                std::printf("e %s\n", bus.error().c_str());
            }
        } else if (op == 's') {
            std::printf("ok\n");
        } else if (op == 'i') {
            std::printf("v %X\n", bus.irq() ? 1u : 0u);
        } else if (op == 'c') {
            std::printf("v %" PRIX64 "\n", bus.cycles());
        } else if (op == 't' && std::sscanf(line + 1, "%lx", &a) == 1) {
            for (unsigned long k = 0; k < a; ++k) {
                bus.tick();
            }
            answered = false;
        } else {
            std::printf("e bad command: %.40s\n", line);
        }
        if (answered) {
            std::fflush(stdout);
        }
    }
    return 0;
}

int usage()
{
    std::fprintf(stderr, "usage: fil run IMAGES [BLOB] [--timeout-polls N] [--ack-limit N]\n"
                         "       fil serve [--ack-limit N]\n");
    return 2;
}

}  // namespace

int main(int argc, char **argv)
{
    if (argc < 2) {
        return usage();
    }
    const std::string mode = argv[1];
    std::vector<const char *> positional;
    uint32_t ack_limit = kDefaultAckLimit, timeout_polls = SNN_DEFAULT_TIMEOUT_POLLS;
    for (int k = 2; k < argc; ++k) {
        const std::string arg = argv[k];
        if ((arg == "--ack-limit" || arg == "--timeout-polls") && k + 1 < argc) {
            const uint32_t value = uint32_t(std::strtoul(argv[++k], nullptr, 0));
            (arg == "--ack-limit" ? ack_limit : timeout_polls) = value;
        } else {
            positional.push_back(argv[k]);
        }
    }
    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vfil_top>(context.get());
    WishboneMaster bus(top.get(), ack_limit);
    int rc;
    if (mode == "run" && (positional.size() == 1 || positional.size() == 2)) {
        rc = run(positional[0], positional.size() == 2 ? positional[1] : nullptr, timeout_polls, bus);
    } else if (mode == "serve" && positional.empty()) {
        rc = serve(bus);
    } else {
        rc = usage();
    }
    std::fflush(stdout);
    top->final();
    return rc;
}
