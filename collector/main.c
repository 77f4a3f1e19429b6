/* Placeholder main while the collector library takes shape. */
#include <stdio.h>

#include "th/common.h"

int main(void)
{
    printf("tracehouse %s\n", TH_VERSION);
    return 0;
}
