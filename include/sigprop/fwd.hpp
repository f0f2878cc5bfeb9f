#pragma once
// Forward declarations of the public types, for headers that only name them.

namespace sigprop {

template <class T> struct signal;
template <class T> struct gradient;
enum class form : unsigned char;
class invalid_argument;

template <class T> struct linear;
template <class T> struct relu;
template <class T> struct gelu;
template <class T> struct layer_norm;
template <class T> struct dropout;
template <class T> struct softmax;
template <class T> struct attention;
template <class T> struct embedding_table;
template <class T> struct embedding;
template <class T> struct multi_head_attention;

template <class... Parts> struct serial_t;
template <class Branch, class T> struct residual_t;
template <class Block> struct repeat_t;

}  // namespace sigprop
