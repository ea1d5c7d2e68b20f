// DYNAMODB_CACHE_HIDDEN: marks the definition of a public class's implementation class
// (`struct DYNAMODB_CACHE_HIDDEN Client::Impl { ... }`) as not exported from the shared
// library. Such a class is declared inside its public class, and so under the public headers'
// default visibility (cmake/library.cmake); without this, its members would be exported too.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define DYNAMODB_CACHE_HIDDEN __attribute__((visibility("hidden")))
#else
#define DYNAMODB_CACHE_HIDDEN
#endif
