/* libFuzzer target: any bytes through the configuration loader; no crash, no leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "gateway/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *errors = NULL;
    struct sl_config *cfg = sl_config_parse("fuzz.yaml", (const char *)data, size, &errors);
    if (!cfg && !errors) {
        abort();                /* a failure must say why */
    }
    if (cfg && errors) {
        abort();                /* success carries no errors */
    }
    sl_config_free(&cfg);
    free(errors);
    return 0;
}
