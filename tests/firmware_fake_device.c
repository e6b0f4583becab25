/* Unit test of the C driver against a fake register block behind the bus hooks.
 * Built by tests/test_firmware_driver_c.py with -std=c11 -Wall -Wextra -Werror -pedantic.
 *
 *   fake_device [BLOB]   BLOB: the plan's weight blob (weight storage ram)
 * Define HAVE_WEIGHTS_C to link the generated snn_model_weights too.
 * Prints one line per failed check; exit status 0 when all pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snn_driver.h"

#define WORD(offset) regs[(offset) / 4u]

static uint32_t regs[SNN_ADDRESS_BYTES / 4u];
static uint32_t done_delay;     /* STATUS reads after START until DONE; 0: never */
static uint32_t pending;        /* countdown of the running image */
static long accesses_left = -1; /* accesses before a bus fault; -1: never */
static uint32_t weight_words, weight_hash;
static int failures;

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
            ++failures;                                                  \
        }                                                                \
    } while (0)

static int faulted(void)
{
    if (accesses_left == 0) {
        return 1;
    }
    if (accesses_left > 0) {
        --accesses_left;
    }
    return 0;
}

static int fake_read(void *ctx, uint32_t offset, uint32_t *value)
{
    (void)ctx;
    if (faulted()) {
        return -1;
    }
    if (offset == SNN_REG_STATUS && pending > 0 && --pending == 0) {
        WORD(SNN_REG_STATUS) = SNN_STATUS_DONE_MASK;
        WORD(SNN_REG_IMAGES) += 1;
    }
    *value = WORD(offset);
    return 0;
}

static void mix(uint32_t offset, uint32_t value)
{
    weight_hash = (weight_hash ^ offset) * 16777619u;
    weight_hash = (weight_hash ^ value) * 16777619u;
}

static int fake_write(void *ctx, uint32_t offset, uint32_t value)
{
    (void)ctx;
    if (faulted()) {
        return -1;
    }
    if (offset == SNN_REG_CTRL) {
        if (value & SNN_CTRL_SOFT_RESET_MASK) {
            WORD(SNN_REG_STATUS) = 0;
            WORD(SNN_REG_IMAGES) = 0;
        }
        if (value & SNN_CTRL_CLEAR_MASK) {
            WORD(SNN_REG_STATUS) = 0;
        }
        if (value & SNN_CTRL_START_MASK) {
            WORD(SNN_REG_STATUS) = SNN_STATUS_BUSY_MASK;
            pending = done_delay;
        }
        return 0;
    }
    if (offset >= SNN_REG_WEIGHT_DATA(0) && offset < SNN_REG_WEIGHT_DATA(SNN_REG_WEIGHT_DATA_COUNT)) {
        mix(offset, value);
        if (offset == SNN_REG_WEIGHT_DATA(0)) {
            ++weight_words;
            WORD(SNN_REG_WEIGHT_ADDR) += 1; /* ADDR auto-increments */
        }
        return 0;
    }
    WORD(offset) = value;
    return 0;
}

static const snn_bus_t bus = {fake_read, fake_write, NULL};

static void power_on(void)
{
    static const uint32_t sizes[] = SNN_BUILD_LAYER_SIZES;
    uint32_t k;
    memset(regs, 0, sizeof regs);
    WORD(SNN_REG_ID) = SNN_BUILD_ID;
    WORD(SNN_REG_VERSION) = SNN_BUILD_VERSION;
    WORD(SNN_REG_MODEL_HASH) = SNN_BUILD_MODEL_HASH;
    WORD(SNN_REG_SHAPE) = SNN_BUILD_SHAPE;
    WORD(SNN_REG_GEOMETRY) = SNN_BUILD_GEOMETRY;
    WORD(SNN_REG_WIDTHS) = SNN_BUILD_WIDTHS;
    for (k = 0; k < SNN_BUILD_N_LAYERS; ++k) {
        WORD(SNN_REG_LAYER_SIZE(k)) = sizes[k];
    }
    done_delay = 5;
    pending = 0;
    accesses_left = -1;
    weight_words = 0;
    weight_hash = 2166136261u;
}

static void test_identity(void)
{
    static const struct {
        uint32_t offset;
        snn_status_t expected;
    } cases[] = {
        {SNN_REG_ID, SNN_ERR_ID},           {SNN_REG_VERSION, SNN_ERR_VERSION},
        {SNN_REG_MODEL_HASH, SNN_ERR_MODEL}, {SNN_REG_SHAPE, SNN_ERR_SHAPE},
        {SNN_REG_LAYER_SIZE_BASE, SNN_ERR_SHAPE}, {SNN_REG_GEOMETRY, SNN_ERR_GEOMETRY},
        {SNN_REG_WIDTHS, SNN_ERR_GEOMETRY},
    };
    snn_dev_t dev;
    size_t k;

    power_on();
    CHECK(snn_init(&dev, 0, &bus) == SNN_OK);
    CHECK(dev.n_inputs == SNN_BUILD_N_INPUTS && dev.n_classes == SNN_BUILD_N_CLASSES);
    for (k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
        power_on();
        WORD(cases[k].offset) ^= 0x100u;
        CHECK(snn_init(&dev, 0, &bus) == cases[k].expected);
    }
    power_on();
    accesses_left = 2;
    CHECK(snn_init(&dev, 0, &bus) == SNN_ERR_BUS);
    CHECK(snn_init(NULL, 0, &bus) == SNN_ERR_ARG);
}

static void test_infer(void)
{
    static uint8_t pixels[SNN_BUILD_N_INPUTS];
    int32_t scores[SNN_BUILD_N_CLASSES];
    uint32_t cls = 99, k;
    snn_counters_t counters;
    snn_dev_t dev;

    power_on();
    CHECK(snn_init(&dev, 0, &bus) == SNN_OK);
    for (k = 0; k < SNN_BUILD_N_INPUTS; ++k) {
        pixels[k] = (uint8_t)(k * 7u + 1u);
    }
    WORD(SNN_REG_RESULT) = SNN_BUILD_N_CLASSES - 1u;
    WORD(SNN_REG_SCORE(0)) = 0xFFFFFFFEu; /* -2 */
    WORD(SNN_REG_SCORE(1)) = 0x7FFFFFFFu;
    WORD(SNN_REG_SPIKES(0)) = 1234u;
    WORD(SNN_REG_CYCLES) = 777u;
    CHECK(snn_infer(&dev, pixels, SNN_BUILD_N_INPUTS, &cls, scores, SNN_BUILD_N_CLASSES) == SNN_OK);
    CHECK(cls == SNN_BUILD_N_CLASSES - 1u);
    CHECK(scores[0] == -2 && scores[1] == INT32_MAX);
    for (k = 0; k < SNN_BUILD_PIXEL_WORDS; ++k) {
        uint32_t expected = 0, byte;
        for (byte = 0; byte < 4u && 4u * k + byte < SNN_BUILD_N_INPUTS; ++byte) {
            expected |= (uint32_t)pixels[4u * k + byte] << (8u * byte);
        }
        CHECK(WORD(SNN_REG_PIXELS(k)) == expected);
    }
    CHECK(snn_read_counters(&dev, &counters) == SNN_OK);
    CHECK(counters.cycles == 777u && counters.images == 1u && counters.spikes[0] == 1234u);
    CHECK(counters.n_stages == SNN_BUILD_N_STAGES);

    /* Without scores; wrong sizes are refused before any access. */
    CHECK(snn_infer(&dev, pixels, SNN_BUILD_N_INPUTS, &cls, NULL, 0) == SNN_OK);
    CHECK(snn_infer(&dev, pixels, SNN_BUILD_N_INPUTS - 1u, &cls, NULL, 0) == SNN_ERR_ARG);
    CHECK(snn_infer(&dev, pixels, SNN_BUILD_N_INPUTS, &cls, scores, SNN_BUILD_N_CLASSES - 1u) == SNN_ERR_ARG);

    /* DONE never comes: bounded by timeout_polls. */
    done_delay = 0;
    dev.timeout_polls = 50;
    CHECK(snn_infer(&dev, pixels, SNN_BUILD_N_INPUTS, &cls, NULL, 0) == SNN_ERR_TIMEOUT);
    CHECK(snn_infer(&dev, pixels, SNN_BUILD_N_INPUTS, &cls, NULL, 0) == SNN_ERR_BUSY);
    CHECK(snn_soft_reset(&dev) == SNN_OK);

    /* A hardware error is reported with its code, and cleared. */
    WORD(SNN_REG_STATUS) = SNN_STATUS_ERROR_MASK | SNN_FIELD_SET(SNN_STATUS_ERROR_CODE, SNN_HW_ERROR_START_WHILE_BUSY);
    CHECK(snn_infer(&dev, pixels, SNN_BUILD_N_INPUTS, &cls, NULL, 0) == SNN_ERR_HARDWARE);
    CHECK(snn_hw_error(&dev) == SNN_HW_ERROR_START_WHILE_BUSY);
    CHECK(snn_clear(&dev) == SNN_OK);
    done_delay = 3;
    CHECK(snn_infer(&dev, pixels, SNN_BUILD_N_INPUTS, &cls, NULL, 0) == SNN_OK);

    /* A failed bus access. */
    accesses_left = 3; /* the third pixel write fails */
    CHECK(snn_infer(&dev, pixels, SNN_BUILD_N_INPUTS, &cls, NULL, 0) == SNN_ERR_BUS);
    accesses_left = -1;
    CHECK(strcmp(snn_strerror(SNN_ERR_TIMEOUT), "timed out waiting for the accelerator") == 0);
}

static void test_weights(const char *blob_path)
{
    snn_dev_t dev;
    uint8_t *blob;
    long size;
    uint32_t blob_hash, blob_words;
    FILE *f;

    power_on();
    CHECK(snn_init(&dev, 0, &bus) == SNN_OK);
    if (!SNN_BUILD_WEIGHT_RAM) {
        static const uint32_t data[1];
        snn_weights_t none;
        memset(&none, 0, sizeof none);
        none.data = data;
        CHECK(snn_load_weights(&dev, &none) == SNN_ERR_NO_WEIGHT_RAM);
        (void)blob_path;
        return;
    }
    if (blob_path == NULL) {
        printf("FAIL: weight storage ram needs the blob path\n");
        ++failures;
        return;
    }
    f = fopen(blob_path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0) {
        printf("FAIL: cannot read %s\n", blob_path);
        ++failures;
        return;
    }
    blob = malloc((size_t)size + 1u);
    CHECK(blob != NULL && fread(blob + 1, 1, (size_t)size, f) == (size_t)size); /* misaligned on purpose */
    fclose(f);

    CHECK(snn_load_weights_blob(&dev, blob + 1, (size_t)size) == SNN_OK);
    blob_hash = weight_hash;
    blob_words = weight_words;
    CHECK(blob_words > 0);

    blob[1 + size / 2] ^= 1u; /* CRC catches a flipped bit */
    CHECK(snn_load_weights_blob(&dev, blob + 1, (size_t)size) == SNN_ERR_WEIGHTS);
    blob[1 + size / 2] ^= 1u;
    CHECK(snn_load_weights_blob(&dev, blob + 1, (size_t)size - 4u) == SNN_ERR_WEIGHTS);
    free(blob);

#ifdef HAVE_WEIGHTS_C
    {
        extern const snn_weights_t snn_model_weights;
        snn_weights_t other = snn_model_weights;
        power_on();
        CHECK(snn_init(&dev, 0, &bus) == SNN_OK);
        CHECK(snn_load_weights(&dev, &snn_model_weights) == SNN_OK);
        CHECK(weight_hash == blob_hash && weight_words == blob_words);
        other.model_hash ^= 1u;
        CHECK(snn_load_weights(&dev, &other) == SNN_ERR_WEIGHTS);
    }
#else
    (void)blob_hash;
#endif
}

int main(int argc, char **argv)
{
    test_identity();
    test_infer();
    test_weights(argc > 1 ? argv[1] : NULL);
    if (failures == 0) {
        printf("all checks passed\n");
    }
    return failures == 0 ? 0 : 1;
}
